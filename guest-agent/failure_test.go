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
	"time"

	"filippo.io/age"

	"cove.dev/cove/internal/channel"
	"cove.dev/cove/internal/jobspec"
	"cove.dev/cove/internal/sealed"
)

// sealedInput is one sealed input of a multi-input test job.
type sealedInput struct {
	name     string
	resource string
	key      []byte
	file     []byte
}

func newSealedInput(t *testing.T, name string, plaintext []byte) sealedInput {
	t.Helper()
	key := make([]byte, sealed.DataKeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	h := sealed.Header{Key: name + "-key", WrappedKey: "vault:v1:" + name + "AAAA", KBS: "https://kbs.example:8443"}
	var buf bytes.Buffer
	w, err := sealed.NewWriter(&buf, key, h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plaintext); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return sealedInput{name: name, resource: sealed.ResourcePath(h.Key, h.WrappedKey), key: key, file: buf.Bytes()}
}

// boundDevice reports hostData and returns fixed evidence.
type boundDevice struct{ hostData [32]byte }

func (d boundDevice) Evidence([64]byte) (json.RawMessage, [32]byte, error) {
	return json.RawMessage(`{"report":"test-only"}`), d.hostData, nil
}

// keyBroker releases keys by resource. With skipEvidence set, Attest
// succeeds without calling the evidence function.
type keyBroker struct {
	keys         map[string][]byte
	skipEvidence bool
}

func (b *keyBroker) Attest(ctx context.Context, evidence func([64]byte) (json.RawMessage, error)) (string, error) {
	if b.skipEvidence {
		return "header.payload.signature", nil
	}
	if _, err := evidence([64]byte{}); err != nil {
		return "", err
	}
	return "header.payload.signature", nil
}

func (b *keyBroker) Resource(ctx context.Context, path string) ([]byte, error) {
	key, ok := b.keys[path]
	if !ok {
		return nil, errors.New("403 PolicyDeny")
	}
	return bytes.Clone(key), nil
}

// newMultiInputJob returns a job that runs script with /bin/sh on inputs,
// with the manifest bound to the device's HOST_DATA and the inputs' bytes
// one after another on the input port.
func newMultiInputJob(t *testing.T, script string, inputs ...sealedInput) (*Job, *bytes.Buffer) {
	t.Helper()
	identity, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}

	c := jobspec.Canonical{
		CoveJob: jobspec.Version,
		Name:    "agent-failure-test",
		TEE:     jobspec.TEESimSNP,
		Command: []string{"/bin/sh", "-c", script},
		Output:  jobspec.Output{Recipient: identity.Recipient().String()},
		KBSURL:  "https://kbs.example:8443",
	}
	broker := &keyBroker{keys: map[string][]byte{}}
	var port bytes.Buffer
	var sizes []int64
	for _, in := range inputs {
		c.Inputs = append(c.Inputs, jobspec.CanonicalInput{Name: in.name, Resource: in.resource})
		broker.keys[in.resource] = in.key
		port.Write(in.file)
		sizes = append(sizes, int64(len(in.file)))
	}
	canonical, err := c.Bytes()
	if err != nil {
		t.Fatal(err)
	}

	out := &bytes.Buffer{}
	job := &Job{
		Manifest: channel.Manifest{Job: canonical, KBSURL: "https://10.0.2.100:8443", InputSizes: sizes},
		Device:   boundDevice{hostData: jobspec.Digest(canonical)},
		Broker:   broker,
		Input:    &port,
		Output:   out,
		InputDir: t.TempDir(),
	}
	return job, out
}

// runWithin runs job and stops the test when Run has not returned within
// limit. A command that Run failed to kill may then be left running.
func runWithin(t *testing.T, job *Job, limit time.Duration) *channel.Transcript {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan *channel.Transcript, 1)
	go func() { done <- Run(ctx, job) }()
	select {
	case tr := <-done:
		return tr
	case <-time.After(limit):
		t.Fatalf("Run did not return within %v", limit)
		return nil
	}
}

func TestRunFeedsInputsInOrder(t *testing.T) {
	a := newSealedInput(t, "a", []byte("first\n"))
	b := newSealedInput(t, "b", []byte("second\n"))
	job, out := newMultiInputJob(t, `cat "$COVE_INPUTS/a" "$COVE_INPUTS/b"`, a, b)

	tr := runWithin(t, job, 10*time.Second)
	if !tr.OK {
		t.Fatalf("transcript not OK: %s", tr.Error)
	}
	if tr.OutputBytes != int64(out.Len()) {
		t.Errorf("transcript output_bytes = %d, want %d", tr.OutputBytes, out.Len())
	}
}

// TestRunKillsCommandOnRejectedInput seals the second of two inputs for
// another resource. The command (a shell that forks cat) reads the first
// input, then waits to open the second pipe, which the agent never opens.
// Unless the agent kills the whole process group, the forked cat keeps the
// output pipe open and Run never returns.
func TestRunKillsCommandOnRejectedInput(t *testing.T) {
	a := newSealedInput(t, "a", []byte("first\n"))
	b := newSealedInput(t, "b", []byte("second\n"))
	other := newSealedInput(t, "c", []byte("other\n"))
	b.file = other.file
	job, out := newMultiInputJob(t, `cat "$COVE_INPUTS/a" "$COVE_INPUTS/b"; echo done`, a, b)
	job.Manifest.InputSizes[1] = int64(len(other.file))

	tr := runWithin(t, job, 10*time.Second)
	if tr.OK {
		t.Fatal("transcript OK for an input sealed for another resource")
	}
	if !strings.Contains(tr.Error, "is for resource") {
		t.Errorf("error %q does not name the resource mismatch", tr.Error)
	}
	if tr.OutputBytes != 0 || tr.OutputSHA256 != "" {
		t.Errorf("failed run reports output: %d bytes of %d sent, SHA-256 %q", tr.OutputBytes, out.Len(), tr.OutputSHA256)
	}
}

func TestRunKillsCommandOnTruncatedLaterInput(t *testing.T) {
	a := newSealedInput(t, "a", []byte("first\n"))
	b := newSealedInput(t, "b", []byte("second\n"))
	job, _ := newMultiInputJob(t, `cat "$COVE_INPUTS/a" "$COVE_INPUTS/b"; echo done`, a, b)
	job.Manifest.InputSizes[1] = 40

	tr := runWithin(t, job, 10*time.Second)
	if tr.OK {
		t.Fatal("transcript OK for a truncated input")
	}
	if !strings.Contains(tr.Error, `input "b"`) {
		t.Errorf("error %q does not name input b", tr.Error)
	}
}

func TestRunRejectsWrongInputSizes(t *testing.T) {
	for name, delta := range map[string]int64{"shorter": -1, "longer": 1, "negative": -1 << 40} {
		t.Run(name, func(t *testing.T) {
			a := newSealedInput(t, "a", []byte("first\n"))
			job, _ := newMultiInputJob(t, `cat "$COVE_INPUTS/a"`, a)
			job.Input = io.MultiReader(job.Input, strings.NewReader("trailing bytes"))
			job.Manifest.InputSizes[0] += delta

			tr := runWithin(t, job, 10*time.Second)
			if tr.OK {
				t.Fatalf("transcript OK with input size %d for a %d-byte input",
					job.Manifest.InputSizes[0], len(a.file))
			}
		})
	}
}

func TestRunRejectsAttestationWithoutEvidence(t *testing.T) {
	a := newSealedInput(t, "a", []byte("first\n"))
	job, out := newMultiInputJob(t, `cat "$COVE_INPUTS/a"`, a)
	job.Device = boundDevice{hostData: [32]byte{1}}
	job.Broker.(*keyBroker).skipEvidence = true

	tr := runWithin(t, job, 10*time.Second)
	if tr.OK {
		t.Fatal("transcript OK although the manifest's binding to the launch was never checked")
	}
	if out.Len() != 0 {
		t.Errorf("the command ran and wrote %d bytes of output", out.Len())
	}
}
