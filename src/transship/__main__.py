from transship.cli.main import main

main()
