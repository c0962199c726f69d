# Replay refusal for md5 apps (deep-merged into config_default's socket_config).
socket_config = {
    # A signature is bound to the socket that used it first.
    "signatureApp": {"md5_replay": "same_socket"},
    # Every signature is single-use.
    "onceApp": {"key": "once-app-key", "md5_replay": "refuse"},
}
