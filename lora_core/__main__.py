from lora_core.cli import main

raise SystemExit(main())
