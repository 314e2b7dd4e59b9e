package vaulttest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	vault "github.com/hashicorp/vault/api"
)

// Names that [Setup] creates in Vault.
const (
	// TransitMount is the mount path of the Transit secrets engine.
	TransitMount = "transit"
	// BrokerPolicy is the Vault policy attached to the broker's AppRole.
	BrokerPolicy = "cove-kbs"
	// BrokerRole is the AppRole role the broker logs in with.
	BrokerRole = "cove-kbs"
)

// brokerPolicyRules lets the broker create and read Transit keys and
// encrypt and decrypt with them, and nothing else: no key deletion,
// export, rotation or configuration. "+" matches exactly one path
// segment, so transit/keys/<name>/rotate and .../config stay denied.
const brokerPolicyRules = `
path "transit/keys/+" {
  capabilities = ["create", "read", "update"]
}
path "transit/encrypt/+" {
  capabilities = ["update"]
}
path "transit/decrypt/+" {
  capabilities = ["update"]
}
`

// AppRole is the login of the broker: an AppRole role id and secret id.
type AppRole struct {
	RoleID   string
	SecretID string
}

// WriteFiles writes the role id and the secret id to role_id and
// secret_id in dir, readable only by the owner, and returns both paths.
func (a AppRole) WriteFiles(dir string) (roleIDFile, secretIDFile string, err error) {
	roleIDFile = filepath.Join(dir, "role_id")
	secretIDFile = filepath.Join(dir, "secret_id")
	if err := os.WriteFile(roleIDFile, []byte(a.RoleID+"\n"), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(secretIDFile, []byte(a.SecretID+"\n"), 0o600); err != nil {
		return "", "", err
	}
	return roleIDFile, secretIDFile, nil
}

// Setup configures the Vault server at addr with rootToken for the key
// broker: it mounts Transit at [TransitMount], writes [BrokerPolicy],
// enables AppRole and creates [BrokerRole] with that policy only, and
// returns a fresh role id and secret id. The secret id has no use limit
// and no expiry, so the broker can log in again after Vault restarts.
// Running Setup again on the same server is safe; it issues a new secret id.
func Setup(ctx context.Context, addr, rootToken string) (AppRole, error) {
	client, err := newClient(addr, rootToken)
	if err != nil {
		return AppRole{}, err
	}
	sys := client.Sys()

	err = sys.MountWithContext(ctx, TransitMount, &vault.MountInput{Type: "transit"})
	if err != nil && !alreadyInUse(err) {
		return AppRole{}, fmt.Errorf("vaulttest: mounting transit: %w", err)
	}

	if err := sys.PutPolicyWithContext(ctx, BrokerPolicy, brokerPolicyRules); err != nil {
		return AppRole{}, fmt.Errorf("vaulttest: writing policy %s: %w", BrokerPolicy, err)
	}

	err = sys.EnableAuthWithOptionsWithContext(ctx, "approle", &vault.EnableAuthOptions{Type: "approle"})
	if err != nil && !alreadyInUse(err) {
		return AppRole{}, fmt.Errorf("vaulttest: enabling approle: %w", err)
	}

	rolePath := "auth/approle/role/" + BrokerRole
	_, err = client.Logical().WriteWithContext(ctx, rolePath, map[string]any{
		"token_policies":     []string{BrokerPolicy},
		"token_ttl":          "1h",
		"token_max_ttl":      "4h",
		"secret_id_num_uses": 0,
		"secret_id_ttl":      0,
	})
	if err != nil {
		return AppRole{}, fmt.Errorf("vaulttest: writing role %s: %w", BrokerRole, err)
	}

	roleID, err := client.Logical().ReadWithContext(ctx, rolePath+"/role-id")
	if err != nil {
		return AppRole{}, fmt.Errorf("vaulttest: reading role id: %w", err)
	}
	secretID, err := client.Logical().WriteWithContext(ctx, rolePath+"/secret-id", nil)
	if err != nil {
		return AppRole{}, fmt.Errorf("vaulttest: creating secret id: %w", err)
	}
	role := AppRole{
		RoleID:   stringField(roleID, "role_id"),
		SecretID: stringField(secretID, "secret_id"),
	}
	if role.RoleID == "" || role.SecretID == "" {
		return AppRole{}, errors.New("vaulttest: Vault returned an empty role id or secret id")
	}
	return role, nil
}

func alreadyInUse(err error) bool {
	var resp *vault.ResponseError
	if !errors.As(err, &resp) || resp.StatusCode != 400 {
		return false
	}
	for _, e := range resp.Errors {
		if strings.Contains(e, "already in use") {
			return true
		}
	}
	return false
}

func stringField(secret *vault.Secret, name string) string {
	if secret == nil {
		return ""
	}
	s, _ := secret.Data[name].(string)
	return s
}
