"""Short, commented demos of the microlm Python API, each runnable as a module:

    python -m microlm.examples.training_demo [CHECKPOINT]         train, evaluate, save, sample
    python -m microlm.examples.text_generation_demo [CHECKPOINT]  the samplers side by side
    python -m microlm.examples.model_inspection_demo [CHECKPOINT] look inside a model

Each takes --help and --seconds and uses the public API (`from microlm import ...`) only,
so it can be copied out and changed. The two that need a trained model load CHECKPOINT (a
file written by training_demo, `microlm train` or the app), or first train a tiny one for a
few seconds (quick_model.py).
"""
