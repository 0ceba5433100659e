from relayer.cli import main

main()
