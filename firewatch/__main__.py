from firewatch.cli import main

if __name__ == "__main__":  # not again in the api's spawned workers, which import this module
    main()
