// Package chdouble is a test double of the Cloud Hypervisor REST API. A
// [Server] listens on a Unix socket, like cloud-hypervisor --api-socket,
// and serves vmm.ping, vm.create, vm.boot, vm.info, vm.shutdown and
// vm.delete with the VM states of Cloud Hypervisor: no VM, Created, Running
// and Shutdown.
//
// Every request is validated against the OpenAPI document that Cloud
// Hypervisor publishes (embedded from cloud-hypervisor.yaml), and an invalid
// one gets 400 with the validation error. On top of the schema, the double
// applies the checks that Cloud Hypervisor makes in code, as of commit
// ae44c29:
//
//   - With platform.sev_snp set, payload.host_data must be 64 characters,
//     or vm.create fails with InvalidHostData. Cloud Hypervisor checks only
//     the length there, so 64 characters that are not hex pass vm.create
//     and make vm.boot fail with FailedToDecodeHostData.
//   - Without platform.sev_snp, payload.host_data is not checked and has no
//     effect.
//   - cpus.boot_vcpus must not exceed cpus.max_vcpus, and the payload needs
//     a kernel, firmware or IGVM image.
//
// A VM never runs: vm.boot only changes the state. [Server.PowerOff] plays
// the part of a guest that powers off.
package chdouble

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

//go:embed cloud-hypervisor.yaml
var specYAML []byte

// APIPrefix is the path under which Cloud Hypervisor serves its API.
const APIPrefix = "/api/v1"

// Version is the VMM version that vmm.ping reports.
const Version = "chdouble-ae44c29"

// VM states that vm.info reports.
const (
	StateCreated  = "Created"
	StateRunning  = "Running"
	StateShutdown = "Shutdown"
)

var (
	specOnce sync.Once
	spec     *openapi3.T
	specErr  error
)

// Spec returns the parsed and validated OpenAPI document of the Cloud
// Hypervisor API.
func Spec() (*openapi3.T, error) {
	specOnce.Do(func() {
		loader := openapi3.NewLoader()
		spec, specErr = loader.LoadFromData(specYAML)
		if specErr == nil {
			specErr = spec.Validate(loader.Context)
		}
		if specErr != nil {
			specErr = fmt.Errorf("load the Cloud Hypervisor OpenAPI document: %w", specErr)
		}
	})
	return spec, specErr
}

// ValidateRequest validates r against the OpenAPI document: the path must
// be one of its operations, and a body must match the operation's schema.
// It reads r.Body and replaces it with an equal reader.
func ValidateRequest(r *http.Request) error {
	doc, err := Spec()
	if err != nil {
		return err
	}
	route, err := findRoute(doc, r.Method, r.URL.Path)
	if err != nil {
		return err
	}
	input := &openapi3filter.RequestValidationInput{
		Request: r,
		Route:   route,
		Options: &openapi3filter.Options{
			AuthenticationFunc:                openapi3filter.NoopAuthenticationFunc,
			RejectWhenRequestBodyNotSpecified: true,
		},
	}
	return openapi3filter.ValidateRequest(r.Context(), input)
}

// ValidateVMConfig validates a vm.create body against the VmConfig schema.
func ValidateVMConfig(body []byte) error {
	req, err := http.NewRequest(http.MethodPut, "http://localhost"+APIPrefix+"/vm.create", strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return ValidateRequest(req)
}

// errRouteNotFound and errMethodNotAllowed tell the handler which status to
// send for a request that matches no operation.
var (
	errRouteNotFound    = errors.New("no such API endpoint")
	errMethodNotAllowed = errors.New("method not allowed for this endpoint")
)

func findRoute(doc *openapi3.T, method, path string) (*routers.Route, error) {
	endpoint, ok := strings.CutPrefix(path, APIPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not under %s", errRouteNotFound, path, APIPrefix)
	}
	item := doc.Paths.Find(endpoint)
	if item == nil {
		return nil, fmt.Errorf("%w: %s", errRouteNotFound, path)
	}
	operation := item.GetOperation(method)
	if operation == nil {
		return nil, fmt.Errorf("%w: %s %s", errMethodNotAllowed, method, path)
	}
	return &routers.Route{
		Spec:      doc,
		Server:    doc.Servers[0],
		Path:      endpoint,
		PathItem:  item,
		Method:    method,
		Operation: operation,
	}, nil
}

// Server is a Cloud Hypervisor API double on a Unix socket.
type Server struct {
	listener net.Listener
	http     *http.Server
	serveErr chan error

	mu     sync.Mutex
	state  string // "" while no VM exists
	config []byte // the vm.create body of the current VM
	log    []string
}

// Listen starts a Server on the Unix socket at path, which must not exist.
func Listen(path string) (*Server, error) {
	if _, err := Spec(); err != nil {
		return nil, err
	}
	listener, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	s := &Server{listener: listener, serveErr: make(chan error, 1)}
	s.http = &http.Server{Handler: s.Handler()}
	go func() { s.serveErr <- s.http.Serve(listener) }()
	return s, nil
}

// SocketPath returns the path of the API socket.
func (s *Server) SocketPath() string { return s.listener.Addr().String() }

// Close stops the server and removes its socket.
func (s *Server) Close() error {
	err := s.http.Shutdown(context.Background())
	if serveErr := <-s.serveErr; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	_ = os.Remove(s.SocketPath())
	return err
}

// State returns the VM state, or "" when no VM exists.
func (s *Server) State() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// Requests returns "METHOD /path STATUS" for every request served so far.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

// PowerOff moves a running VM to Shutdown, as a guest poweroff does.
func (s *Server) PowerOff() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == StateRunning {
		s.state = StateShutdown
	}
}
