// Package e2e runs Cove's main job end to end: a real QEMU VM booting
// Debian's kernel with cove-agent as init, the sim-snp device, the broker
// over real TLS, and a real Vault server.
package e2e

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"cove.dev/cove/attest/simsnp"
	"cove.dev/cove/internal/launcher"
)

const testRows = 5000

func TestMainJobEndToEnd(t *testing.T) {
	img := buildImage(t)
	e := newEnv(t, envOptions{})
	plain := e.sealClaims("claims", testRows)
	plan := e.writeJob(img, nil)
	e.grant("claims", plan.MeasurementHex(), plan.DigestHex())

	res, output, err := e.run(img, plan, nil)
	if err != nil {
		t.Fatalf("cove run: %v", err)
	}
	got := e.unseal(output)
	want := expectedTotals(t, plain)
	if !bytes.Equal(got, want) {
		t.Errorf("unsealed totals =\n%s\nwant\n%s", got, want)
	}
	tr := res.Transcript
	if !tr.OK || tr.Verdict != "allow" {
		t.Errorf("transcript ok=%v verdict=%q error=%q", tr.OK, tr.Verdict, tr.Error)
	}
	if tr.JobDigest != plan.DigestHex() {
		t.Errorf("transcript job digest = %s, want %s", tr.JobDigest, plan.DigestHex())
	}
	if strings.Count(tr.Token, ".") != 2 {
		t.Errorf("transcript token %q is not a JWT", tr.Token)
	}
	if len(tr.EvidenceSHA256) != 64 {
		t.Errorf("transcript evidence digest = %q", tr.EvidenceSHA256)
	}
	log := e.log.String()
	if !strings.Contains(log, plan.DigestHex()) || !strings.Contains(log, `"insecure_test_only_root":true`) {
		t.Errorf("broker log lacks the release of job %s marked insecure_test_only_root:\n%s", plan.DigestHex(), log)
	}
	if res.Timings.Boot <= 0 || res.Timings.Release <= 0 {
		t.Errorf("timings = %+v, want boot and release stages measured", res.Timings)
	}
	if b, err := os.ReadFile(e.dir + "/claims-totals.transcript.json"); err != nil {
		t.Error(err)
	} else {
		var written map[string]any
		if err := json.Unmarshal(b, &written); err != nil || written["ok"] != true {
			t.Errorf("transcript file = %s (%v)", b, err)
		}
	}
}

func TestReleaseRefusedWhenMeasurementDiffers(t *testing.T) {
	img := buildImage(t)
	e := newEnv(t, envOptions{})
	e.sealClaims("claims", 100)
	plan := e.writeJob(img, nil)
	other := plan.Measurement
	other[0] ^= 0xff
	e.grant("claims", hex.EncodeToString(other[:]), plan.DigestHex())

	res, output, err := e.run(img, plan, nil)
	if !errors.Is(err, launcher.ErrJobFailed) {
		t.Fatalf("cove run error = %v, want a failed job", err)
	}
	resource := plan.Inputs[0].Header.Resource
	if !strings.Contains(res.Transcript.Error, resource) {
		t.Errorf("agent error %q does not name the refused resource %s", res.Transcript.Error, resource)
	}
	if !strings.Contains(e.log.String(), "measurement") {
		t.Errorf("broker log does not name the failed rule measurement:\n%s", e.log.String())
	}
	noFile(t, output)
}

func TestReleaseRefusedWhenHostDataDiffers(t *testing.T) {
	img := buildImage(t)
	e := newEnv(t, envOptions{})
	e.sealClaims("claims", 100)
	plan := e.writeJob(img, nil)
	e.grant("claims", plan.MeasurementHex(), plan.DigestHex())

	// A launch bound to another job: the device reports a HOST_DATA that
	// is not this job's digest.
	chain, err := simsnp.LoadOrCreateChain(e.simDir)
	if err != nil {
		t.Fatal(err)
	}
	wrong := plan.Digest
	wrong[31] ^= 1
	dev, err := simsnp.NewDevice(chain, simsnp.LaunchParams{Measurement: plan.Measurement, HostData: wrong})
	if err != nil {
		t.Fatal(err)
	}
	res, output, err := e.run(img, plan, deviceFunc(dev))
	if !errors.Is(err, launcher.ErrJobFailed) {
		t.Fatalf("cove run error = %v, want a failed job", err)
	}
	if !strings.Contains(res.Transcript.Error, "HOST_DATA") {
		t.Errorf("agent error %q does not name HOST_DATA", res.Transcript.Error)
	}
	if strings.Contains(e.log.String(), `"verdict":"allow"`) {
		t.Errorf("broker released a key:\n%s", e.log.String())
	}
	noFile(t, output)
}

func TestReleaseRefusedWhenTestRootNotTrusted(t *testing.T) {
	img := buildImage(t)
	e := newEnv(t, envOptions{distrustTestRoot: true})
	e.sealClaims("claims", 100)
	plan := e.writeJob(img, nil)
	e.grant("claims", plan.MeasurementHex(), plan.DigestHex())

	res, output, err := e.run(img, plan, nil)
	if !errors.Is(err, launcher.ErrJobFailed) {
		t.Fatalf("cove run error = %v, want a failed job", err)
	}
	if res.Transcript.Verdict == "allow" {
		t.Errorf("verdict = allow for evidence from an untrusted test root")
	}
	if !strings.Contains(strings.ToLower(e.log.String()), "test-only") && !strings.Contains(e.log.String(), "test_only") {
		t.Errorf("broker log does not say the test-only root is not trusted:\n%s", e.log.String())
	}
	noFile(t, output)
}

func TestCorruptInputLeavesNoOutput(t *testing.T) {
	img := buildImage(t)
	tests := []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"flipped byte", func(b []byte) []byte { b[len(b)-100] ^= 0x01; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1000] }},
	}
	e := newEnv(t, envOptions{})
	e.sealClaims("claims", testRows)
	sealedPath := e.dir + "/claims.csv.cove"
	good, err := os.ReadFile(sealedPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			if err := os.WriteFile(sealedPath, tt.damage(append([]byte(nil), good...)), 0o600); err != nil {
				t.Fatal(err)
			}
			plan := e.writeJob(img, nil)
			e.grant("claims", plan.MeasurementHex(), plan.DigestHex())
			res, output, err := e.run(img, plan, nil)
			if !errors.Is(err, launcher.ErrJobFailed) {
				t.Fatalf("cove run error = %v, want a failed job", err)
			}
			if !strings.Contains(res.Transcript.Error, `input "claims"`) {
				t.Errorf("agent error %q does not name the input", res.Transcript.Error)
			}
			if res.Transcript.Verdict != "allow" {
				t.Errorf("verdict = %q, want the key released before the corruption was found", res.Transcript.Verdict)
			}
			noFile(t, output)
		})
	}
}

func TestVaultPausedThenResumed(t *testing.T) {
	img := buildImage(t)
	e := newEnv(t, envOptions{})
	plain := e.sealClaims("claims", 100)
	plan := e.writeJob(img, nil)
	e.grant("claims", plan.MeasurementHex(), plan.DigestHex())

	if err := e.vault.Pause(); err != nil {
		t.Fatal(err)
	}
	res, output, err := e.run(img, plan, nil)
	if resumeErr := e.vault.Resume(); resumeErr != nil {
		t.Fatal(resumeErr)
	}
	if !errors.Is(err, launcher.ErrJobFailed) {
		t.Fatalf("cove run with Vault paused: error = %v, want a failed job", err)
	}
	if !strings.Contains(res.Transcript.Error, "503") && !strings.Contains(strings.ToLower(res.Transcript.Error), "unavailable") {
		t.Errorf("agent error %q does not report the broker's 503", res.Transcript.Error)
	}
	noFile(t, output)

	// The same job on the same broker, with Vault reachable again.
	if _, _, err := e.run(img, plan, nil); err != nil {
		t.Fatalf("cove run after Vault resumed: %v", err)
	}
	if got, want := e.unseal(output), expectedTotals(t, plain); !bytes.Equal(got, want) {
		t.Errorf("unsealed totals =\n%s\nwant\n%s", got, want)
	}
}

// deviceFunc adapts a sim-snp device with custom launch parameters.
func deviceFunc(dev *simsnp.Device) launcher.Device {
	return simDeviceAdapter{dev}
}

type simDeviceAdapter struct{ dev *simsnp.Device }

func (a simDeviceAdapter) Evidence(rd [64]byte) (json.RawMessage, error) {
	ev, err := a.dev.Report(rd)
	if err != nil {
		return nil, err
	}
	return json.Marshal(ev)
}
