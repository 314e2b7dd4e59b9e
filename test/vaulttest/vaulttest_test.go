package vaulttest

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// loginAppRole returns a client logged in with role.
func loginAppRole(t *testing.T, s *Server, role AppRole) *vault.Client {
	t.Helper()
	c, err := newClient(s.Addr, "")
	if err != nil {
		t.Fatal(err)
	}
	secret, err := c.Logical().Write("auth/approle/login", map[string]any{"role_id": role.RoleID, "secret_id": role.SecretID})
	if err != nil {
		t.Fatalf("AppRole login: %v", err)
	}
	c.SetToken(secret.Auth.ClientToken)
	return c
}

func encrypt(t *testing.T, c *vault.Client, key, plaintext string) string {
	t.Helper()
	secret, err := c.Logical().Write("transit/encrypt/"+key, map[string]any{
		"plaintext": base64.StdEncoding.EncodeToString([]byte(plaintext)),
	})
	if err != nil {
		t.Fatalf("transit encrypt: %v", err)
	}
	return secret.Data["ciphertext"].(string)
}

func decrypt(t *testing.T, c *vault.Client, key, ciphertext string) string {
	t.Helper()
	secret, err := c.Logical().Write("transit/decrypt/"+key, map[string]any{"ciphertext": ciphertext})
	if err != nil {
		t.Fatalf("transit decrypt: %v", err)
	}
	plaintext, _ := base64.StdEncoding.DecodeString(secret.Data["plaintext"].(string))
	return string(plaintext)
}

func TestSetupAppRoleCanUseTransit(t *testing.T) {
	s := Dev(t)
	c := loginAppRole(t, s, s.SetupBroker(t))

	if _, err := c.Logical().Write("transit/keys/k1", map[string]any{"type": "aes256-gcm96"}); err != nil {
		t.Fatalf("creating a transit key: %v", err)
	}
	ciphertext := encrypt(t, c, "k1", "data key")
	if got := decrypt(t, c, "k1", ciphertext); got != "data key" {
		t.Errorf("decrypt = %q, want %q", got, "data key")
	}
}

func TestSetupAppRoleDeniedOutsideTransit(t *testing.T) {
	s := Dev(t)
	c := loginAppRole(t, s, s.SetupBroker(t))
	if _, err := c.Logical().Write("transit/keys/k1", nil); err != nil {
		t.Fatal(err)
	}

	denied := map[string]func() error{
		"delete transit key": func() error { _, err := c.Logical().Delete("transit/keys/k1"); return err },
		"export transit key": func() error { _, err := c.Logical().Read("transit/export/encryption-key/k1"); return err },
		"rotate transit key": func() error { _, err := c.Logical().Write("transit/keys/k1/rotate", nil); return err },
		"configure transit key": func() error {
			_, err := c.Logical().Write("transit/keys/k1/config", map[string]any{"deletion_allowed": true})
			return err
		},
		"list mounts":  func() error { _, err := c.Sys().ListMounts(); return err },
		"write policy": func() error { return c.Sys().PutPolicy("x", `path "*" { capabilities = ["sudo"] }`) },
	}
	for name, call := range denied {
		err := call()
		var resp *vault.ResponseError
		if !errors.As(err, &resp) || resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: error %v, want 403 permission denied", name, err)
		}
	}
}

func TestSetupTwiceIssuesNewSecretID(t *testing.T) {
	s := Dev(t)
	first := s.SetupBroker(t)
	second := s.SetupBroker(t)
	if first.RoleID != second.RoleID {
		t.Errorf("role id changed from %s to %s", first.RoleID, second.RoleID)
	}
	if first.SecretID == second.SecretID {
		t.Error("second Setup returned the same secret id")
	}
	loginAppRole(t, s, first)
	loginAppRole(t, s, second)
}

func TestPersistentKeepsKeysAcrossRestart(t *testing.T) {
	s := Persistent(t)
	role := s.SetupBroker(t)
	c := loginAppRole(t, s, role)
	if _, err := c.Logical().Write("transit/keys/k1", nil); err != nil {
		t.Fatal(err)
	}
	ciphertext := encrypt(t, c, "k1", "kept")

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}

	c = loginAppRole(t, s, role)
	if got := decrypt(t, c, "k1", ciphertext); got != "kept" {
		t.Errorf("decrypt after restart = %q, want %q", got, "kept")
	}
}

func TestPauseBlocksRequests(t *testing.T) {
	s := Dev(t)
	c, err := s.Client()
	if err != nil {
		t.Fatal(err)
	}
	c.SetClientTimeout(500 * time.Millisecond)

	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	_, err = c.Sys().Health()
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	if err == nil {
		t.Error("a request to a paused server succeeded")
	}
	if _, err := c.Sys().Health(); err != nil {
		t.Errorf("request after Resume: %v", err)
	}
}
