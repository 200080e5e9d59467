from stagecast.cli import main

main()
