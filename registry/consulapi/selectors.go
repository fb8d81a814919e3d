package consulapi

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// The selectors each endpoint's filter knows, as Consul names them.

func agentServiceKnown(p string) bool { return knownService(p, "") }

func knownService(p, prefix string) bool {
	rest, ok := strings.CutPrefix(p, prefix)
	if !ok {
		return false
	}
	switch rest {
	case "ID", "Service", "Tags", "Meta", "Port", "Address", "Kind", "Datacenter":
		return true
	}
	k, ok := strings.CutPrefix(rest, "Meta.")
	return ok && k != ""
}

func checkKnown(p string) bool {
	switch p {
	case "Node", "CheckID", "Name", "Status", "Notes", "Output", "ServiceID", "ServiceName", "ServiceTags", "Type":
		return true
	}
	return false
}

func entryKnown(p string) bool {
	if knownService(p, "Service.") {
		return true
	}
	if c, ok := strings.CutPrefix(p, "Checks."); ok {
		return checkKnown(c)
	}
	if n, ok := strings.CutPrefix(p, "Node."); ok {
		switch n {
		case "Node", "Address", "Datacenter", "ID", "Meta":
			return true
		}
		k, ok := strings.CutPrefix(n, "Meta.")
		return ok && k != ""
	}
	return false
}

func catalogKnown(p string) bool {
	switch p {
	case "ID", "Node", "Address", "Datacenter", "ServiceID", "ServiceName", "ServiceAddress", "ServiceTags", "ServiceMeta", "ServicePort", "NodeMeta":
		return true
	}
	for _, pre := range []string{"ServiceMeta.", "NodeMeta."} {
		if k, ok := strings.CutPrefix(p, pre); ok && k != "" {
			return true
		}
	}
	return false
}

// metaField resolves "Meta" (its keys, a collection) or "Meta.<key>".
func metaField(p, prefix string, m map[string]string) ([]string, bool, bool) {
	if p == prefix {
		return slices.Sorted(maps.Keys(m)), true, true
	}
	if k, ok := strings.CutPrefix(p, prefix+"."); ok {
		v, ok := m[k]
		if !ok {
			return nil, false, true
		}
		return []string{v}, false, true
	}
	return nil, false, false
}

// agentServiceFields resolves the selectors of an agent service, under
// prefix ("" or "Service.").
func agentServiceFields(s interface {
	fields() (id, name, addr string, port int, tags []string, meta map[string]string)
}, prefix string) fields {
	id, name, addr, port, tags, meta := s.fields()
	return func(p string) ([]string, bool, bool) {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok {
			return nil, false, false
		}
		switch rest {
		case "ID":
			return []string{id}, false, true
		case "Service":
			return []string{name}, false, true
		case "Address":
			return []string{addr}, false, true
		case "Port":
			return []string{strconv.Itoa(port)}, false, true
		case "Tags":
			return tags, true, true
		case "Kind":
			return []string{""}, false, true
		}
		return metaField(rest, "Meta", meta)
	}
}

func checkFields(c *healthCheck, prefix string) fields {
	return func(p string) ([]string, bool, bool) {
		switch strings.TrimPrefix(p, prefix) {
		case "Node":
			return []string{c.Node}, false, true
		case "CheckID":
			return []string{c.CheckID}, false, true
		case "Name":
			return []string{c.Name}, false, true
		case "Status":
			return []string{c.Status}, false, true
		case "Notes":
			return []string{c.Notes}, false, true
		case "Output":
			return []string{c.Output}, false, true
		case "ServiceID":
			return []string{c.ServiceID}, false, true
		case "ServiceName":
			return []string{c.ServiceName}, false, true
		case "ServiceTags":
			return c.ServiceTags, true, true
		case "Type":
			return []string{c.Type}, false, true
		}
		return nil, false, false
	}
}

// entryFields resolves the selectors of a ServiceEntry. A Checks.<field>
// selector reaches the field of every check, so == matches when any check
// has the value.
func entryFields(e *serviceEntry) fields {
	svc := agentServiceFields(&e.Service, "Service.")
	return func(p string) ([]string, bool, bool) {
		if strings.HasPrefix(p, "Service.") {
			return svc(p)
		}
		if c, ok := strings.CutPrefix(p, "Checks."); ok {
			var vals []string
			for i := range e.Checks {
				v, _, _ := checkFields(&e.Checks[i], "")(c)
				vals = append(vals, v...)
			}
			return vals, true, true
		}
		switch p {
		case "Node.Node":
			return []string{e.Node.Node}, false, true
		case "Node.Address":
			return []string{e.Node.Address}, false, true
		case "Node.Datacenter":
			return []string{e.Node.Datacenter}, false, true
		case "Node.ID":
			return []string{e.Node.ID}, false, true
		}
		return metaField(p, "Node.Meta", e.Node.Meta)
	}
}

func catalogFields(c *catalogService) fields {
	return func(p string) ([]string, bool, bool) {
		switch p {
		case "ID":
			return []string{c.ID}, false, true
		case "Node":
			return []string{c.Node}, false, true
		case "Address":
			return []string{c.Address}, false, true
		case "Datacenter":
			return []string{c.Datacenter}, false, true
		case "ServiceID":
			return []string{c.ServiceID}, false, true
		case "ServiceName":
			return []string{c.ServiceName}, false, true
		case "ServiceAddress":
			return []string{c.ServiceAddress}, false, true
		case "ServicePort":
			return []string{strconv.Itoa(c.ServicePort)}, false, true
		case "ServiceTags":
			return c.ServiceTags, true, true
		}
		if strings.HasPrefix(p, "ServiceMeta") {
			return metaField(p, "ServiceMeta", c.ServiceMeta)
		}
		return metaField(p, "NodeMeta", c.NodeMeta)
	}
}

func (s *agentService) fields() (string, string, string, int, []string, map[string]string) {
	return s.ID, s.Service, s.Address, s.Port, s.Tags, s.Meta
}
