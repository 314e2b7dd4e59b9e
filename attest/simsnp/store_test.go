package simsnp_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"cove.dev/cove/attest"
	"cove.dev/cove/attest/simsnp"
)

func TestLoadOrCreateChainReturnsStoredChain(t *testing.T) {
	simsnp.UseSmallKeys(t)
	dir := filepath.Join(t.TempDir(), "sim-snp")
	created, err := simsnp.LoadOrCreateChain(dir)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := simsnp.LoadOrCreateChain(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(created.ARK.Raw, loaded.ARK.Raw) || !bytes.Equal(created.ASK.Raw, loaded.ASK.Raw) ||
		!bytes.Equal(created.VCEK.Raw, loaded.VCEK.Raw) {
		t.Error("second LoadOrCreateChain returned a different chain")
	}

	// A report from the loaded chain verifies with the created chain's
	// roots, as a broker's report from a launcher's chain does.
	ev := newReport(t, loaded, testParams(), testReportData)
	_, err = attest.VerifySNP(ev, attest.VerifyOptions{InsecureTestOnlyRoots: created.Roots()})
	if err != nil {
		t.Errorf("VerifySNP(report of loaded chain, roots of created chain) = %v", err)
	}
}

func TestLoadOrCreateChainFiles(t *testing.T) {
	simsnp.UseSmallKeys(t)
	dir := t.TempDir()
	if _, err := simsnp.LoadOrCreateChain(dir); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		if !strings.Contains(e.Name(), "TEST-ONLY") {
			t.Errorf("file %q does not contain TEST-ONLY in its name", e.Name())
		}
	}
	if len(names) != 2 {
		t.Errorf("chain directory holds %v, expected the chain file and the roots file", names)
	}
	info, err := os.Stat(filepath.Join(dir, simsnp.ChainFileName))
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("chain file mode = %v, expected 0600 because it holds private keys", mode)
	}
	roots, err := os.ReadFile(filepath.Join(dir, simsnp.RootsFileName))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(roots, []byte("PRIVATE KEY")) {
		t.Error("roots file contains a private key")
	}
}

func TestLoadRootsVerifiesReports(t *testing.T) {
	simsnp.UseSmallKeys(t)
	dir := t.TempDir()
	chain, err := simsnp.LoadOrCreateChain(dir)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := simsnp.LoadRoots(dir)
	if err != nil {
		t.Fatal(err)
	}
	ev := newReport(t, chain, testParams(), testReportData)
	claims, err := attest.VerifySNP(ev, attest.VerifyOptions{InsecureTestOnlyRoots: roots})
	if err != nil {
		t.Fatalf("VerifySNP(roots from LoadRoots) = %v", err)
	}
	if !claims.TestOnlyRoot {
		t.Error("TestOnlyRoot = false, expected true")
	}
}

func TestLoadOrCreateChainConcurrentFirstUse(t *testing.T) {
	simsnp.UseSmallKeys(t)
	dir := t.TempDir()
	const processes = 2
	chains := make([]*simsnp.Chain, processes)
	errs := make([]error, processes)
	var wg sync.WaitGroup
	for i := range processes {
		wg.Go(func() { chains[i], errs[i] = simsnp.LoadOrCreateChain(dir) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("LoadOrCreateChain #%d: %v", i, err)
		}
	}
	if !bytes.Equal(chains[0].ARK.Raw, chains[1].ARK.Raw) {
		t.Error("concurrent first uses of one directory returned different chains")
	}
}

func TestLoadOrCreateChainRejectsCorruptFile(t *testing.T) {
	simsnp.UseSmallKeys(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, simsnp.ChainFileName), []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := simsnp.LoadOrCreateChain(dir); err == nil {
		t.Error("LoadOrCreateChain(corrupt chain file) succeeded, expected an error")
	}
}
