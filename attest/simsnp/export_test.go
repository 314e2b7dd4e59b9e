package simsnp

import "testing"

// UseSmallKeys makes chains created until the end of the test use RSA-2048
// keys, because generating an RSA-4096 key takes about a second.
func UseSmallKeys(t testing.TB) {
	old := rsaKeyBits
	rsaKeyBits = 2048
	t.Cleanup(func() { rsaKeyBits = old })
}
