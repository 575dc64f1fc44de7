from radio_nas.cli import main

raise SystemExit(main())
