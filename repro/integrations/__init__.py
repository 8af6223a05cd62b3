"""Framework integrations: a tracked run recorded from inside Lightning's or the Hugging Face
``Trainer``'s training (``repro.integrations.lightning``, ``repro.integrations.transformers``).

Each module imports its framework when it is imported itself, never before: repro depends
on neither (``pip install repro[lightning]`` or ``repro[transformers]``).
"""
