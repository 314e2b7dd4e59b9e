package main

import (
	"crypto/rand"
	"encoding/hex"
)

// randomToken returns a fresh admin token for the demo's broker.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}
