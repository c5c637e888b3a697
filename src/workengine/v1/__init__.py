"""Generated from protos/workengine/v1 by scripts/generate_protos.py. Do not edit."""
