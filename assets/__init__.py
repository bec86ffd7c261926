"""Asset discovery: what each connected platform holds, with first and last sightings."""
