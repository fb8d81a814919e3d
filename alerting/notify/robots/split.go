package robots

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"

	commoncfg "github.com/prometheus/common/config"
	"gopkg.in/yaml.v3"
)

// The keys Split takes out of each receiver.
const (
	keyFeishu   = "feishu_configs"
	keyDingTalk = "dingtalk_configs"
	keyWeCom    = "wecom_robot_configs"
)

// nodeBudget bounds the YAML nodes Split visits through aliases or copies
// while checking robot configs and rewriting the rest, so that a small file
// of nested aliases cannot make it expand without end.
const nodeBudget = 1 << 16

var errTooComplex = errors.New("too many aliased nodes")

// Split removes feishu_configs, dingtalk_configs and wecom_robot_configs from every receiver of an
// Alertmanager configuration file and returns the rest (for Alertmanager's config.Load) and the robot
// configs by receiver name. It validates the robot configs (applying defaults); errors name the
// receiver, the key and the line in the file. Comments/positions of the rest need not be kept.
//
// When no receiver has robot configs, rest is raw itself, so Alertmanager's
// own errors keep pointing at the right lines. Input that is not a YAML
// mapping with a receivers list is returned unchanged for Alertmanager to
// judge. Unknown keys inside a robot config are errors, as Alertmanager's
// loader treats its own receivers. A robot config without http_config gets
// the file's global.http_config, as Alertmanager's own receivers do. Robot
// configs brought into a receiver by a merge key (<<) are refused: they
// cannot be taken out of the shared mapping without changing the other
// receivers that merge it. Relative *_file paths are kept as written (like
// Alertmanager's config.Load, unlike its LoadFile). Errors never quote a
// webhook URL or a secret.
func Split(raw []byte) (rest []byte, robots map[string]Receiver, err error) {
	robots = map[string]Receiver{}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		// Alertmanager's loader reports syntax errors in its own words.
		return raw, robots, nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return raw, robots, nil
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return raw, robots, nil
	}
	list := lookup(root, "receivers")
	if list == nil || list.Kind != yaml.SequenceNode {
		return raw, robots, nil
	}

	global := globalHTTPConfig(root)
	names := map[string]int{}
	for _, item := range list.Content {
		if n := lookup(resolve(item), "name"); n != nil && n.Kind == yaml.ScalarNode {
			names[n.Value]++
		}
	}

	// Merges are checked before anything is taken out: a receiver's robot
	// keys may be the very mapping another receiver merges.
	for _, item := range list.Content {
		if err := checkMerges(resolve(item)); err != nil {
			return nil, nil, err
		}
	}

	changed := false
	for _, item := range list.Content {
		recv := resolve(item)
		if recv.Kind != yaml.MappingNode {
			continue
		}
		r, found, err := takeRobots(recv, names, global)
		if err != nil {
			return nil, nil, err
		}
		if !found {
			continue
		}
		changed = true
		if r.Len() > 0 {
			robots[nameOf(recv)] = r
		}
	}
	if !changed {
		return raw, robots, nil
	}

	if err := expandDangling(&doc); err != nil {
		return nil, nil, fmt.Errorf("rewrite configuration: %w", err)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, nil, fmt.Errorf("rewrite configuration: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, nil, fmt.Errorf("rewrite configuration: %w", err)
	}
	return buf.Bytes(), robots, nil
}

// takeRobots removes the robot keys from one receiver mapping and decodes
// them; found reports whether the receiver had any robot key at all.
func takeRobots(recv *yaml.Node, names map[string]int, global commoncfg.HTTPClientConfig) (r Receiver, found bool, err error) {
	kept := make([]*yaml.Node, 0, len(recv.Content))
	type entry struct{ key, value *yaml.Node }
	var taken []entry
	for i := 0; i+1 < len(recv.Content); i += 2 {
		k, v := recv.Content[i], recv.Content[i+1]
		key := resolve(k)
		if key.Kind == yaml.ScalarNode && isRobotKey(key.Value) {
			taken = append(taken, entry{key, v})
			continue
		}
		kept = append(kept, k, v)
	}
	if len(taken) == 0 {
		return r, false, nil
	}

	name := nameOf(recv)
	if name == "" {
		return r, true, fmt.Errorf("receiver at line %d: %s: the receiver has no name", recv.Line, taken[0].key.Value)
	}
	if names[name] > 1 {
		return r, true, fmt.Errorf("receiver %q (line %d): the name is used by more than one receiver", name, recv.Line)
	}
	seen := map[string]bool{}
	for _, e := range taken {
		if seen[e.key.Value] {
			return r, true, fmt.Errorf("receiver %q: %s (line %d): key given twice", name, e.key.Value, e.key.Line)
		}
		seen[e.key.Value] = true
		var err error
		switch e.key.Value {
		case keyFeishu:
			r.Feishu, err = decodeList[FeishuConfig](name, e.key, e.value, global)
		case keyDingTalk:
			r.DingTalk, err = decodeList[DingTalkConfig](name, e.key, e.value, global)
		case keyWeCom:
			r.WeCom, err = decodeList[WeComConfig](name, e.key, e.value, global)
		}
		if err != nil {
			return r, true, err
		}
	}
	recv.Content = kept
	return r, true, nil
}

// decodeList decodes the list under one robot key, checking each config's
// keys first so that a misspelt key is an error rather than a silently
// ignored setting.
func decodeList[T any](recv string, key, value *yaml.Node, global commoncfg.HTTPClientConfig) ([]*T, error) {
	list := resolve(value)
	if list.Kind == yaml.ScalarNode && list.Tag == "!!null" {
		return nil, nil
	}
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("receiver %q: %s (line %d): must be a list of configs", recv, key.Value, key.Line)
	}
	out := make([]*T, 0, len(list.Content))
	for i, item := range list.Content {
		m := resolve(item)
		if m.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("receiver %q: %s[%d] (line %d): must be a mapping", recv, key.Value, i, item.Line)
		}
		budget := nodeBudget
		c := new(T)
		if err := checkKeys(m, reflect.TypeOf(c), &budget); err != nil {
			return nil, fmt.Errorf("receiver %q: %s[%d] (line %d): %w", recv, key.Value, i, item.Line, err)
		}
		if err := m.Decode(c); err != nil {
			return nil, fmt.Errorf("receiver %q: %s[%d] (line %d): %w", recv, key.Value, i, item.Line, redact(err, m))
		}
		if hc := httpConfigOf(c); hc != nil && *hc == nil {
			g := global
			*hc = &g
		}
		out = append(out, c)
	}
	return out, nil
}

// redact keeps the webhook URL, which holds the robot's token or key, out
// of a decoding error; url.Parse, for one, quotes the URL it refuses. (A
// secret is a plain string, which no decoding error quotes.)
func redact(err error, m *yaml.Node) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		uerr.URL = "<redacted>"
	}
	msg := err.Error()
	if v := lookup(m, "webhook_url"); v != nil && v.Kind == yaml.ScalarNode && len(v.Value) >= 8 {
		msg = strings.ReplaceAll(msg, strconv.Quote(v.Value), "<redacted>")
		msg = strings.ReplaceAll(msg, v.Value, "<redacted>")
	}
	return errors.New(msg)
}

// globalHTTPConfig returns the file's global.http_config, or the default
// when there is none. A global section Alertmanager would refuse is left to
// Alertmanager's loader to report.
func globalHTTPConfig(root *yaml.Node) commoncfg.HTTPClientConfig {
	hc := commoncfg.DefaultHTTPClientConfig
	n := lookup(lookup(root, "global"), "http_config")
	if n == nil || n.Kind != yaml.MappingNode {
		return hc
	}
	var decoded commoncfg.HTTPClientConfig
	if err := n.Decode(&decoded); err != nil {
		return hc
	}
	return decoded
}

// httpConfigOf returns the address of a robot config's http_config.
func httpConfigOf(c any) **commoncfg.HTTPClientConfig {
	switch c := c.(type) {
	case *FeishuConfig:
		return &c.HTTPConfig
	case *DingTalkConfig:
		return &c.HTTPConfig
	case *WeComConfig:
		return &c.HTTPConfig
	}
	return nil
}

// checkMerges refuses robot keys that a receiver gets through a merge key.
func checkMerges(recv *yaml.Node) error {
	if recv.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(recv.Content); i += 2 {
		k := resolve(recv.Content[i])
		if k.Kind != yaml.ScalarNode || k.Value != "<<" {
			continue
		}
		if mk := mergedRobotKey(recv.Content[i+1]); mk != "" {
			return fmt.Errorf("receiver %q: %s (line %d): robot configs cannot come from a merge key (<<); list them in the receiver",
				nameOf(recv), mk, k.Line)
		}
	}
	return nil
}

func isRobotKey(k string) bool {
	return k == keyFeishu || k == keyDingTalk || k == keyWeCom
}

// mergedRobotKey returns a robot key found in the mapping(s) a merge key
// brings in, following nested merges, or "". Each node is looked at once,
// so aliases that repeat or contain themselves cost nothing extra.
func mergedRobotKey(v *yaml.Node) string {
	seen := map[*yaml.Node]bool{}
	queue := []*yaml.Node{v}
	for len(queue) > 0 {
		n := resolve(queue[0])
		queue = queue[1:]
		if n == nil || seen[n] {
			continue
		}
		seen[n] = true
		switch n.Kind {
		case yaml.SequenceNode:
			queue = append(queue, n.Content...)
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := resolve(n.Content[i])
				if k.Kind != yaml.ScalarNode {
					continue
				}
				if isRobotKey(k.Value) {
					return k.Value
				}
				if k.Value == "<<" {
					queue = append(queue, n.Content[i+1])
				}
			}
		}
	}
	return ""
}

func nameOf(recv *yaml.Node) string {
	n := lookup(recv, "name")
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

// resolve follows an alias to the node it names. YAML anchors must come
// before their aliases, so a chain of aliases cannot loop.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// lookup returns the (resolved) value of key in mapping m, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := resolve(m.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			return resolve(m.Content[i+1])
		}
	}
	return nil
}

// checkKeys reports the first mapping key under n that the Go type t has no
// field for, with its line. It follows the rules of the YAML decoder:
// yaml tags, inline structs and maps, merge keys.
func checkKeys(n *yaml.Node, t reflect.Type, budget *int) error {
	*budget--
	if *budget < 0 {
		return errTooComplex
	}
	n = resolve(n)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil // the decoder reports the type mismatch
		}
		fields, inlineMap := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := resolve(n.Content[i]), n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				continue
			}
			if k.Value == "<<" && k.Tag == "!!merge" {
				if err := checkMerge(v, t, budget); err != nil {
					return err
				}
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				if inlineMap == nil {
					return fmt.Errorf("line %d: unknown key %q", k.Line, k.Value)
				}
				ft = inlineMap
			}
			if err := checkKeys(v, ft, budget); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 1; i < len(n.Content); i += 2 {
			if err := checkKeys(n.Content[i], t.Elem(), budget); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for _, item := range n.Content {
			if err := checkKeys(item, t.Elem(), budget); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkMerge(v *yaml.Node, t reflect.Type, budget *int) error {
	v = resolve(v)
	if v.Kind == yaml.SequenceNode {
		for _, m := range v.Content {
			if err := checkKeys(m, t, budget); err != nil {
				return err
			}
		}
		return nil
	}
	return checkKeys(v, t, budget)
}

// yamlFields returns the keys a struct accepts with their types, and the
// element type of an inline map that takes any other key (nil if none).
func yamlFields(t reflect.Type) (map[string]reflect.Type, reflect.Type) {
	fields := map[string]reflect.Type{}
	var inlineMap reflect.Type
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.PkgPath != "" && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch ft.Kind() {
			case reflect.Map:
				inlineMap = ft.Elem()
			case reflect.Struct:
				sub, subMap := yamlFields(ft)
				for k, v := range sub {
					fields[k] = v
				}
				if subMap != nil {
					inlineMap = subMap
				}
			}
			continue
		}
		if f.PkgPath != "" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields, inlineMap
}

// expandDangling replaces every alias whose anchor was inside a removed
// robot config with a copy of what it named, so the rest still parses.
func expandDangling(doc *yaml.Node) error {
	kept := map[*yaml.Node]bool{}
	var mark func(n *yaml.Node)
	mark = func(n *yaml.Node) {
		kept[n] = true
		for _, c := range n.Content {
			mark(c)
		}
	}
	mark(doc)

	budget := nodeBudget
	var fix func(n *yaml.Node) error
	fix = func(n *yaml.Node) error {
		for i, c := range n.Content {
			if c.Kind == yaml.AliasNode && c.Alias != nil && !kept[c.Alias] {
				cp, err := copyExpand(c.Alias, kept, &budget)
				if err != nil {
					return err
				}
				n.Content[i] = cp
				continue
			}
			if err := fix(c); err != nil {
				return err
			}
		}
		return nil
	}
	return fix(doc)
}

func copyExpand(n *yaml.Node, kept map[*yaml.Node]bool, budget *int) (*yaml.Node, error) {
	*budget--
	if *budget < 0 {
		return nil, errTooComplex
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		if kept[n.Alias] {
			return n, nil
		}
		return copyExpand(n.Alias, kept, budget)
	}
	cp := *n
	cp.Anchor = ""
	cp.Content = make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		cc, err := copyExpand(c, kept, budget)
		if err != nil {
			return nil, err
		}
		cp.Content[i] = cc
	}
	return &cp, nil
}
