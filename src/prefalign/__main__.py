from prefalign.cli import main

main()
