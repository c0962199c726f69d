"""Socket.IO applications the end-to-end tests run under sioctl."""
