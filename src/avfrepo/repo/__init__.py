"""The signed [avf] repository on disk: publish into it, verify it."""
