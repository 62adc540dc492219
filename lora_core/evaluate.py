"""`python -m lora_core.evaluate --run RUN`: evaluation on demand (lora_core.training.evaluate)."""
from lora_core.training.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
