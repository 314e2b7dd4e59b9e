package vaulttest

import (
	"context"
	"testing"

	"cove.dev/cove/internal/testenv"
)

// Dev starts an in-memory Vault server for t and stops it when t ends.
// It skips t (or fails it under CI=true) when the Vault binary is missing.
func Dev(t testing.TB) *Server {
	t.Helper()
	return start(t, ModeDev)
}

// Persistent starts a Vault server with file storage under a temporary
// folder of t, initialized and unsealed, and stops it when t ends.
func Persistent(t testing.TB) *Server {
	t.Helper()
	return start(t, ModePersistent)
}

func start(t testing.TB, mode Mode) *Server {
	t.Helper()
	binary := testenv.Vault(t)
	s, err := Launch(context.Background(), binary, t.TempDir(), mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// SetupBroker runs [Setup] on s and fails t on error.
func (s *Server) SetupBroker(t testing.TB) AppRole {
	t.Helper()
	role, err := Setup(context.Background(), s.Addr, s.RootToken)
	if err != nil {
		t.Fatal(err)
	}
	return role
}
