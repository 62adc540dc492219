"""`python -m lora_core.train --config RUN/config.yaml`: the run process (lora_core.training.train)."""
from lora_core.training.train import main

if __name__ == "__main__":
    raise SystemExit(main())
