"""Fine-tuning on the knowledge base: the generator's LoRA adapter, the embedder, the hold-out split.

Heavy imports (torch, transformers, peft, sentence-transformers) happen inside the functions, so
importing :mod:`chatbot.training.splits` from the evaluation costs nothing.
"""
