# The gateway test app: three signing apps, one of them with the stronger HMAC scheme.
keys = "gwapp-cookie-key"

socket_config = {
    "signatureApp": {"key": "signature-app-key"},
    "centralServiceApp": {"key_env": "GWAPP_CENTRAL_KEY"},
    "hmacApp": {"key": "hmac-app-key", "scheme": "hmac-sha256"},
    # Its sockets must sign the socket.io handshake itself.
    "strictApp": {"key": "strict-app-key", "handshake_sign": True},
}

gateway = {"cors": "*", "http_max_body": 4096}
