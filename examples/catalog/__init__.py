"""A small catalog with soft delete: partial unique index, restore, filters from query parameters."""
