# No connect / disconnect notices to exchange peers (gateway.presence off).
gateway = {"presence": False}
