package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"filippo.io/age"

	"cove.dev/cove/internal/channel"
	"cove.dev/cove/internal/jobspec"
	"cove.dev/cove/internal/sealed"
)

const testResource = "cove/claims/dmF1bHQ6djE6QUFBQQ"

type fakeDevice struct {
	hostData [32]byte
}

func (d *fakeDevice) Evidence(reportData [64]byte) (json.RawMessage, [32]byte, error) {
	return json.RawMessage(`{"report":"test-only"}`), d.hostData, nil
}

type fakeBroker struct {
	keys      map[string][]byte
	requested []string
}

func (b *fakeBroker) Attest(ctx context.Context, evidence func([64]byte) (json.RawMessage, error)) (string, error) {
	if _, err := evidence([64]byte{}); err != nil {
		return "", err
	}
	return "header.payload.signature", nil
}

func (b *fakeBroker) Resource(ctx context.Context, path string) ([]byte, error) {
	b.requested = append(b.requested, path)
	key, ok := b.keys[path]
	if !ok {
		return nil, errors.New("403 PolicyDeny")
	}
	return append([]byte(nil), key...), nil
}

type testJob struct {
	job      *Job
	broker   *fakeBroker
	identity *age.X25519Identity
	output   *bytes.Buffer
}

// newTestJob seals plaintext under a fresh key for resource and builds a
// job whose command is sh -c script.
func newTestJob(t *testing.T, plaintext []byte, resource, script string) *testJob {
	t.Helper()
	key := make([]byte, sealed.DataKeySize)
	rand.Read(key)
	var file bytes.Buffer
	_, wrapped, err := sealed.ParseResourcePath(resource)
	if err != nil {
		t.Fatal(err)
	}
	w, err := sealed.NewWriter(&file, key, sealed.Header{Key: "claims", WrappedKey: wrapped, KBS: "https://127.0.0.1:8443"})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plaintext)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	identity, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	canonical, err := (&jobspec.Canonical{
		CoveJob: jobspec.Version,
		Name:    "test",
		TEE:     jobspec.TEESimSNP,
		Inputs:  []jobspec.CanonicalInput{{Name: "claims", Resource: testResource}},
		Command: []string{"/bin/sh", "-c", script},
		Output:  jobspec.Output{Recipient: identity.Recipient().String()},
		KBSURL:  "https://127.0.0.1:8443",
	}).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	broker := &fakeBroker{keys: map[string][]byte{resource: key}}
	out := &bytes.Buffer{}
	tj := &testJob{broker: broker, identity: identity, output: out}
	tj.job = &Job{
		Manifest: channel.Manifest{Job: canonical, KBSURL: "https://10.0.2.100:8443", InputSizes: []int64{int64(file.Len())}},
		Device:   &fakeDevice{hostData: jobspec.Digest(canonical)},
		Broker:   broker,
		Input:    bytes.NewReader(file.Bytes()),
		Output:   out,
		InputDir: t.TempDir(),
	}
	return tj
}

func (tj *testJob) unseal(t *testing.T) []byte {
	t.Helper()
	r, err := age.Decrypt(bytes.NewReader(tj.output.Bytes()), tj.identity)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRunSealsCommandOutput(t *testing.T) {
	plaintext := bytes.Repeat([]byte("claim,row\n"), 300000)
	tj := newTestJob(t, plaintext, testResource, `cat "$COVE_INPUTS/claims"`)
	tr := Run(context.Background(), tj.job)
	if !tr.OK {
		t.Fatalf("transcript not OK: %s", tr.Error)
	}
	if got := tj.unseal(t); !bytes.Equal(got, plaintext) {
		t.Errorf("unsealed output is %d bytes, want the %d input bytes", len(got), len(plaintext))
	}
	if tr.OutputBytes != int64(tj.output.Len()) {
		t.Errorf("transcript output bytes = %d, sent %d", tr.OutputBytes, tj.output.Len())
	}
	if tr.Verdict != "allow" || tr.Token != "header.payload.signature" {
		t.Errorf("verdict %q token %q", tr.Verdict, tr.Token)
	}
	if tr.JobDigest == "" || len(tr.EvidenceSHA256) != 64 {
		t.Errorf("job digest %q evidence digest %q", tr.JobDigest, tr.EvidenceSHA256)
	}
}

func TestRunRejectsManifestNotBoundToLaunch(t *testing.T) {
	tj := newTestJob(t, []byte("x\n"), testResource, `cat "$COVE_INPUTS/claims"`)
	tj.job.Device = &fakeDevice{hostData: [32]byte{1}}
	tr := Run(context.Background(), tj.job)
	if tr.OK || !strings.Contains(tr.Error, "HOST_DATA") {
		t.Fatalf("transcript ok=%v error=%q, want a HOST_DATA mismatch", tr.OK, tr.Error)
	}
	if len(tj.broker.requested) != 0 {
		t.Errorf("requested resources %v for a job not bound to the launch", tj.broker.requested)
	}
	if tj.output.Len() != 0 {
		t.Errorf("wrote %d bytes of output", tj.output.Len())
	}
}

func TestRunRejectsInputOfAnotherResource(t *testing.T) {
	other := "cove/claims/dmF1bHQ6djE6QkJCQg"
	tj := newTestJob(t, []byte("x\n"), other, `cat "$COVE_INPUTS/claims"`)
	// The broker releases the job's key, but the file is sealed for
	// another resource.
	tj.broker.keys[testResource] = tj.broker.keys[other]
	tr := Run(context.Background(), tj.job)
	if tr.OK || !strings.Contains(tr.Error, other) {
		t.Fatalf("transcript ok=%v error=%q, want a resource mismatch naming %s", tr.OK, tr.Error, other)
	}
}

func TestRunFailsWhenResourceRefused(t *testing.T) {
	tj := newTestJob(t, []byte("x\n"), testResource, `cat "$COVE_INPUTS/claims"`)
	delete(tj.broker.keys, testResource)
	tr := Run(context.Background(), tj.job)
	if tr.OK || tr.Verdict != "deny" {
		t.Fatalf("transcript ok=%v verdict=%q", tr.OK, tr.Verdict)
	}
	if !strings.Contains(tr.Error, testResource) {
		t.Errorf("error %q does not name the refused resource", tr.Error)
	}
}

func TestRunFailsWhenCommandSkipsInput(t *testing.T) {
	tj := newTestJob(t, bytes.Repeat([]byte("x"), 1<<20), testResource, `echo done`)
	tr := Run(context.Background(), tj.job)
	if tr.OK || !strings.Contains(tr.Error, errIncomplete.Error()) {
		t.Fatalf("transcript ok=%v error=%q, want %q", tr.OK, tr.Error, errIncomplete)
	}
}

func TestRunFailsOnCorruptInput(t *testing.T) {
	tj := newTestJob(t, bytes.Repeat([]byte("claim,row\n"), 1000), testResource, `cat "$COVE_INPUTS/claims"`)
	file, _ := io.ReadAll(tj.job.Input)
	file[len(file)-20] ^= 1
	tj.job.Input = bytes.NewReader(file)
	tr := Run(context.Background(), tj.job)
	if tr.OK {
		t.Fatal("transcript OK for a corrupt input")
	}
	if !strings.Contains(tr.Error, `input "claims"`) {
		t.Errorf("error %q does not name the input", tr.Error)
	}
}

func TestRunReportsCommandFailure(t *testing.T) {
	tj := newTestJob(t, []byte("x\n"), testResource, `cat "$COVE_INPUTS/claims" >/dev/null; exit 3`)
	tr := Run(context.Background(), tj.job)
	if tr.OK || tr.ExitCode != 3 {
		t.Fatalf("transcript ok=%v exit code=%d error=%q, want exit code 3", tr.OK, tr.ExitCode, tr.Error)
	}
}

func TestRunRejectsSubstitutedBrokerCA(t *testing.T) {
	tj := newTestJob(t, []byte("x\n"), testResource, `cat "$COVE_INPUTS/claims"`)
	tj.job.Manifest.KBSCACert = []byte("-----BEGIN CERTIFICATE-----\nhost's own CA\n")
	tr := Run(context.Background(), tj.job)
	if tr.OK || !strings.Contains(tr.Error, "broker CA") {
		t.Fatalf("transcript ok=%v error=%q, want a broker CA mismatch", tr.OK, tr.Error)
	}
	if len(tj.broker.requested) != 0 {
		t.Errorf("requested resources %v through a substituted broker", tj.broker.requested)
	}
}

func TestRunRejectsManifestBrokerURL(t *testing.T) {
	tests := map[string]string{
		"plain http":     "http://10.0.2.100:8443",
		"other host":     "https://kbs.attacker.example:8443",
		"other path":     "https://10.0.2.100:8443/other",
		"with user info": "https://user@10.0.2.100:8443",
		"missing":        "",
	}
	for name, url := range tests {
		t.Run(name, func(t *testing.T) {
			tj := newTestJob(t, []byte("x\n"), testResource, `cat "$COVE_INPUTS/claims"`)
			tj.job.Manifest.KBSURL = url
			tr := Run(context.Background(), tj.job)
			if tr.OK {
				t.Fatalf("transcript OK for the manifest broker URL %q", url)
			}
			if !strings.Contains(tr.Error, "broker URL") {
				t.Errorf("error %q does not name the broker URL", tr.Error)
			}
			if len(tj.broker.requested) != 0 {
				t.Errorf("requested resources %v through the broker URL %q", tj.broker.requested, url)
			}
		})
	}
}
