from kgi.cli import main

raise SystemExit(main())
