// Command vault is HashiCorp Vault built from the Go module proxy, for
// Cove's tests and demo only (Vault 1.21 is under the Business Source
// License).
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
