"""The base of every response schema: a plain pydantic model.

django-ninja's ``Schema`` resolves each field through its Django-aware getter, which costs
about 0.2 ms per row; answers are built as dicts already, so plain pydantic validates them
about 15 times faster (bench/bench_api.py). Inputs (query, body) stay ninja ``Schema``s.
"""

from pydantic import BaseModel, ConfigDict


class Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
