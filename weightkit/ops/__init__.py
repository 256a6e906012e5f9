"""Operations on Models: pure functions that read Models and return data."""
