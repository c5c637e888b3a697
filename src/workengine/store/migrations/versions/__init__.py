"""The schema's migrations, oldest first. Each one lets the previous release's replicas run
beside it (expand now, contract in a later release): the rule is in docs/development.md,
"Migrations and rolling upgrades", and tests/unit/test_migration_guard.py checks the ones added
since the previous release. A released migration is never edited."""
