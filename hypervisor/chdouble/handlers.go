package chdouble

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// maxBodySize bounds a request body; a VmConfig is a few kilobytes.
const maxBodySize = 1 << 20

// vmConfig is the part of VmConfig that the semantic checks read.
type vmConfig struct {
	Cpus *struct {
		BootVcpus int `json:"boot_vcpus"`
		MaxVcpus  int `json:"max_vcpus"`
	} `json:"cpus"`
	Payload struct {
		Firmware string  `json:"firmware"`
		Kernel   string  `json:"kernel"`
		Igvm     string  `json:"igvm"`
		HostData *string `json:"host_data"`
	} `json:"payload"`
	Platform *struct {
		SevSnp bool `json:"sev_snp"`
	} `json:"platform"`
}

// Handler returns the HTTP handler of the API.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serve)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	recorder := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	s.route(recorder, r)
	s.mu.Lock()
	s.log = append(s.log, fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, recorder.status))
	s.mu.Unlock()
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodySize+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "read the request body: %v", err)
		return
	}
	if len(body) > maxBodySize {
		writeError(w, http.StatusRequestEntityTooLarge, "request body exceeds %d bytes", maxBodySize)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	if err := ValidateRequest(r); err != nil {
		switch {
		case errors.Is(err, errRouteNotFound):
			writeError(w, http.StatusNotFound, "%v", err)
		case errors.Is(err, errMethodNotAllowed):
			writeError(w, http.StatusMethodNotAllowed, "%v", err)
		default:
			writeError(w, http.StatusBadRequest, "invalid request: %v", err)
		}
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	switch strings.TrimPrefix(r.URL.Path, APIPrefix) {
	case "/vmm.ping":
		writeJSON(w, map[string]any{"version": Version, "build_version": Version, "pid": os.Getpid(), "features": []string{}})
	case "/vm.create":
		s.create(w, body)
	case "/vm.boot":
		s.boot(w)
	case "/vm.info":
		s.info(w)
	case "/vm.shutdown":
		s.transition(w, StateRunning, StateShutdown, "shut down")
	case "/vm.delete":
		s.state, s.config = "", nil
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, http.StatusNotFound, "%s is in the API document but not implemented by the double", r.URL.Path)
	}
}

func (s *Server) create(w http.ResponseWriter, body []byte) {
	if s.state != "" {
		writeError(w, http.StatusMethodNotAllowed, "VmAlreadyCreated: a VM exists in state %s; delete it first", s.state)
		return
	}
	var cfg vmConfig
	if err := json.Unmarshal(body, &cfg); err != nil {
		writeError(w, http.StatusBadRequest, "invalid VmConfig: %v", err)
		return
	}
	if err := cfg.validate(); err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	s.state, s.config = StateCreated, body
	w.WriteHeader(http.StatusNoContent)
}

// validate applies the checks that Cloud Hypervisor makes in
// VmConfig::validate and that the schema cannot express.
func (cfg *vmConfig) validate() error {
	if cfg.Cpus != nil && cfg.Cpus.BootVcpus > cfg.Cpus.MaxVcpus {
		return fmt.Errorf("ValidationError::CpusMaxLowerThanBoot: boot_vcpus %d exceeds max_vcpus %d", cfg.Cpus.BootVcpus, cfg.Cpus.MaxVcpus)
	}
	if cfg.Payload.Kernel == "" && cfg.Payload.Firmware == "" && cfg.Payload.Igvm == "" {
		return errors.New("ValidationError::KernelMissing: the payload needs a kernel, firmware or igvm")
	}
	if cfg.sevSNP() && cfg.Payload.HostData != nil && len(*cfg.Payload.HostData) != 64 {
		return fmt.Errorf("ValidationError::InvalidHostData: host_data is %d characters, want 64", len(*cfg.Payload.HostData))
	}
	return nil
}

func (cfg *vmConfig) sevSNP() bool { return cfg.Platform != nil && cfg.Platform.SevSnp }

func (s *Server) boot(w http.ResponseWriter) {
	if s.state == "" {
		writeError(w, http.StatusNotFound, "VmNotCreated: no VM to boot")
		return
	}
	if s.state == StateRunning {
		writeError(w, http.StatusMethodNotAllowed, "InvalidStateTransition: the VM is already %s", s.state)
		return
	}
	var cfg vmConfig
	if err := json.Unmarshal(s.config, &cfg); err != nil {
		writeError(w, http.StatusInternalServerError, "decode the stored VmConfig: %v", err)
		return
	}
	// The IGVM loader decodes host_data only at boot.
	if cfg.sevSNP() && cfg.Payload.HostData != nil {
		if _, err := hex.DecodeString(*cfg.Payload.HostData); err != nil {
			writeError(w, http.StatusInternalServerError, "VmBoot: IgvmLoad: FailedToDecodeHostData: %v", err)
			return
		}
	}
	s.state = StateRunning
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) info(w http.ResponseWriter) {
	if s.state == "" {
		writeError(w, http.StatusNotFound, "VmNotCreated: no VM exists")
		return
	}
	writeJSON(w, map[string]any{"config": json.RawMessage(s.config), "state": s.state})
}

// transition moves the VM from state from to state to, or writes 404 when no
// VM exists and 405 when the VM is in another state.
func (s *Server) transition(w http.ResponseWriter, from, to, verb string) {
	if s.state == "" {
		writeError(w, http.StatusNotFound, "VmNotCreated: no VM to %s", verb)
		return
	}
	if s.state != from {
		writeError(w, http.StatusMethodNotAllowed, "InvalidStateTransition: cannot %s a VM in state %s", verb, s.state)
		return
	}
	s.state = to
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, format+"\n", args...)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}
