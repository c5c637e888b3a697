"""PostgreSQL persistence: schema migrations, named SQL queries and transactions."""
