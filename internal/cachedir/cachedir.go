// Package cachedir locates the folder where Cove caches what it downloads
// and builds outside the checkout: the guest kernel, OVMF, the Vault build
// and the sim-snp device's test-only key chain.
package cachedir

import (
	"os"
	"path/filepath"
)

// Dir returns $COVE_CACHE, or $XDG_CACHE_HOME/cove, or ~/.cache/cove. The
// same rule is in test/infra/deps.sh.
func Dir() string {
	if d := os.Getenv("COVE_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "cove")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "cove")
}
