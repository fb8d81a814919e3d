package consulapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-obs/vigil/registry"
)

// maxBody bounds a request body.
const maxBody = 1 << 20

// errDecode is wrapped by every error of a request body; its text names
// the field at fault.
var errDecode = errors.New("request decode failed")

// serviceRegistration is the body of PUT /v1/agent/service/register
// (Consul's AgentServiceRegistration). Fields Vigil does not use are
// accepted and ignored (Weights, EnableTagOverride, TaggedAddresses…);
// Connect, proxies and sidecars are refused.
type serviceRegistration struct {
	ID      string
	Name    string
	Tags    []string
	Port    int
	Address string
	Meta    map[string]string
	Kind    string
	Proxy   json.RawMessage
	Connect json.RawMessage
	Check   *serviceCheck
	Checks  []*serviceCheck
}

// serviceCheck is Consul's AgentServiceCheck. Durations are Go duration
// strings ("10s") or numbers of nanoseconds, as Consul takes them.
type serviceCheck struct {
	CheckID                        string
	Name                           string
	Notes                          string
	Status                         string
	Output                         string
	HTTP                           string
	Method                         string
	Header                         map[string][]string
	Body                           string
	TLSSkipVerify                  bool
	TCP                            string
	GRPC                           string
	GRPCUseTLS                     bool
	Interval                       json.RawMessage
	Timeout                        json.RawMessage
	TTL                            json.RawMessage
	DeregisterCriticalServiceAfter json.RawMessage

	// Kinds of checks Vigil does not run; set, they are refused.
	Args              []string
	ScriptArgs        []string
	DockerContainerID string
	Shell             string
	UDP               string
	H2PING            string
	OSService         string
	AliasNode         string
	AliasService      string
	TCPUseTLS         bool
}

// decodeRegistration decodes a register body into a registration, with
// Consul's defaults for check IDs and names. Errors wrap errDecode and
// name the field.
func decodeRegistration(body []byte) (registry.Registration, error) {
	var in serviceRegistration
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&in); err != nil {
		return registry.Registration{}, decodeError(err)
	}
	if dec.More() {
		return registry.Registration{}, fmt.Errorf("%w: trailing data after the JSON object", errDecode)
	}
	switch {
	case in.Kind != "":
		return registry.Registration{}, fmt.Errorf("%w: Kind: only typical services are supported, not %q", errDecode, in.Kind)
	case len(in.Proxy) > 0 && string(in.Proxy) != "null":
		return registry.Registration{}, fmt.Errorf("%w: Proxy: Connect proxies are not supported", errDecode)
	case len(in.Connect) > 0 && string(in.Connect) != "null":
		return registry.Registration{}, fmt.Errorf("%w: Connect: Connect is not supported", errDecode)
	}
	id := in.ID
	if id == "" {
		id = in.Name
	}
	reg := registry.Registration{Service: registry.Service{ID: id, Name: in.Name, Tags: in.Tags, Address: in.Address,
		Port: in.Port, Meta: in.Meta}}
	type named struct {
		field string
		c     *serviceCheck
	}
	var checks []named
	if in.Check != nil {
		checks = append(checks, named{"Check", in.Check})
	}
	for j, c := range in.Checks {
		if c != nil {
			checks = append(checks, named{fmt.Sprintf("Checks[%d]", j), c})
		}
	}
	for i, nc := range checks {
		chk, err := convertCheck(nc.field, nc.c)
		if err != nil {
			return registry.Registration{}, err
		}
		if chk.ID == "" {
			chk.ID = "service:" + id
			if len(checks) > 1 {
				chk.ID += ":" + strconv.Itoa(i+1)
			}
		}
		if chk.Name == "" {
			chk.Name = fmt.Sprintf("Service '%s' check", in.Name)
		}
		reg.Checks = append(reg.Checks, chk)
	}
	return reg, nil
}

func convertCheck(field string, c *serviceCheck) (registry.Check, error) {
	switch {
	case len(c.Args) > 0 || len(c.ScriptArgs) > 0 || c.Shell != "" || c.DockerContainerID != "":
		return registry.Check{}, fmt.Errorf("%w: %s.Args: script and Docker checks are not supported", errDecode, field)
	case c.UDP != "":
		return registry.Check{}, fmt.Errorf("%w: %s.UDP: UDP checks are not supported", errDecode, field)
	case c.H2PING != "":
		return registry.Check{}, fmt.Errorf("%w: %s.H2PING: H2PING checks are not supported", errDecode, field)
	case c.OSService != "":
		return registry.Check{}, fmt.Errorf("%w: %s.OSService: OS service checks are not supported", errDecode, field)
	case c.AliasNode != "" || c.AliasService != "":
		return registry.Check{}, fmt.Errorf("%w: %s.AliasService: alias checks are not supported", errDecode, field)
	case c.TCPUseTLS:
		return registry.Check{}, fmt.Errorf("%w: %s.TCPUseTLS: TCP checks over TLS are not supported", errDecode, field)
	}
	var durs [4]time.Duration
	for i, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"Interval", c.Interval}, {"Timeout", c.Timeout}, {"TTL", c.TTL}, {"DeregisterCriticalServiceAfter", c.DeregisterCriticalServiceAfter}} {
		d, err := parseDuration(f.raw)
		if err != nil {
			return registry.Check{}, fmt.Errorf("%w: %s.%s: %w", errDecode, field, f.name, err)
		}
		durs[i] = d
	}
	return registry.Check{ID: c.CheckID, Name: c.Name, Notes: c.Notes, Status: c.Status, Output: c.Output,
		Definition: registry.Definition{HTTP: c.HTTP, Method: c.Method, Header: c.Header, Body: c.Body, TLSSkipVerify: c.TLSSkipVerify,
			TCP: c.TCP, GRPC: c.GRPC, GRPCUseTLS: c.GRPCUseTLS, Interval: durs[0], Timeout: durs[1], TTL: durs[2],
			DeregisterCriticalServiceAfter: durs[3]}}, nil
}

// parseDuration reads a duration as Consul does: a Go duration string or
// a number of nanoseconds; absent or null is zero.
func parseDuration(raw json.RawMessage) (time.Duration, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return 0, nil
	}
	if s[0] == '"' {
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return 0, err
		}
		if str == "" {
			return 0, nil
		}
		d, err := time.ParseDuration(str)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", str)
		}
		if d < 0 {
			return 0, fmt.Errorf("negative duration %q", str)
		}
		return d, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > float64(1<<62) {
		return 0, fmt.Errorf("invalid duration %s", s)
	}
	return time.Duration(f), nil
}

// decodeError names the field of a JSON error.
func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		f := te.Field
		if f == "" {
			f = "body"
		}
		return fmt.Errorf("%w: %s: cannot decode %s into %s", errDecode, f, te.Value, te.Type)
	case errors.As(err, &se):
		return fmt.Errorf("%w: body: invalid JSON at offset %d: %s", errDecode, se.Offset, se.Error())
	}
	return fmt.Errorf("%w: body: %s", errDecode, err.Error())
}

// checkUpdate is the body of PUT /v1/agent/check/update/:id.
type checkUpdate struct {
	Status string
	Output string
}
