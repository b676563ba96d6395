from shared.cli.app import main

main()
