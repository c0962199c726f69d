# sioctl dev: let pages from other local origins connect.
io = {"init": {"cors": True}}
