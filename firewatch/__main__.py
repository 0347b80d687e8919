from firewatch.cli import main

main()
