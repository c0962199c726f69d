from sioctl.cli.main import main

main()
