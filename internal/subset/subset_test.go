package subset

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// shop is a description unlike the platform's, so the closure is seen to come from the
// description alone: orders own lines (CASCADE) and tag links, name a customer (PROTECT);
// lines name a product; nodes own their children (a self CASCADE); notes name an order
// (SET_NULL).
const shop = `{
 "dependency_order": ["shop.customer", "shop.product", "shop.tag", "shop.order", "shop.line", "shop.node", "shop.note"],
 "models": [
  {"model": "shop.customer", "db_table": "c", "pk": {"name": "id", "column": "id", "type": "AutoField"}, "fields": []},
  {"model": "shop.product", "db_table": "p", "pk": {"name": "id", "column": "id", "type": "AutoField"},
   "fields": [{"name": "image", "column": "image", "type": "FileField"}]},
  {"model": "shop.tag", "db_table": "t", "pk": {"name": "id", "column": "id", "type": "AutoField"}, "fields": []},
  {"model": "shop.order", "db_table": "o", "pk": {"name": "id", "column": "id", "type": "AutoField"}, "fields": [
   {"name": "customer", "column": "customer_id", "type": "ForeignKey", "to": "shop.customer", "on_delete": "PROTECT"},
   {"name": "tags", "type": "ManyToManyField", "to": "shop.tag", "through_table": "o_tags", "through_columns": ["order_id", "tag_id"]}]},
  {"model": "shop.line", "db_table": "l", "pk": {"name": "id", "column": "id", "type": "BigAutoField"}, "fields": [
   {"name": "order", "column": "order_id", "type": "ForeignKey", "to": "shop.order", "on_delete": "CASCADE"},
   {"name": "product", "column": "product_id", "type": "ForeignKey", "to": "shop.product", "on_delete": "PROTECT"}]},
  {"model": "shop.node", "db_table": "n", "pk": {"name": "id", "column": "id", "type": "AutoField"}, "fields": [
   {"name": "parent", "column": "parent_id", "type": "ForeignKey", "null": true, "to": "shop.node", "on_delete": "CASCADE"}]},
  {"model": "shop.note", "db_table": "nt", "pk": {"name": "id", "column": "id", "type": "AutoField"}, "fields": [
   {"name": "order", "column": "order_id", "type": "ForeignKey", "null": true, "to": "shop.order", "on_delete": "SET_NULL"}]}
 ]}`

// memSource is a backup's fixtures in memory: objects by model.
type memSource map[string][]string

func (s memSource) Each(ctx context.Context, m platform.Model, fn func(*fixture.Object) error) error {
	r := fixture.NewReader(strings.NewReader("[" + strings.Join(s[m.Label], ",") + "]"))
	for {
		obj, err := r.Next()
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if err := fn(&obj); err != nil {
			return err
		}
	}
}

// memLive is the live database: pks by model.
type memLive map[string][]int64

func (l memLive) Existing(ctx context.Context, m platform.Model, pks []int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	for _, pk := range pks {
		if slices.Contains(l[m.Label], pk) {
			out[pk] = true
		}
	}
	return out, nil
}

func backup() memSource {
	return memSource{
		"shop.customer": {`{"model": "shop.customer", "pk": 1, "fields": {}}`},
		"shop.product": {`{"model": "shop.product", "pk": 5, "fields": {"image": "p/5.png"}}`,
			`{"model": "shop.product", "pk": 6, "fields": {"image": "p/6.png"}}`},
		"shop.tag": {`{"model": "shop.tag", "pk": 7, "fields": {}}`, `{"model": "shop.tag", "pk": 8, "fields": {}}`},
		"shop.order": {`{"model": "shop.order", "pk": 1, "fields": {"customer": 1, "tags": [7, 8]}}`,
			`{"model": "shop.order", "pk": 2, "fields": {"customer": 1, "tags": [8]}}`},
		"shop.line": {`{"model": "shop.line", "pk": 10, "fields": {"order": 1, "product": 5}}`,
			`{"model": "shop.line", "pk": 11, "fields": {"order": "1", "product": 6}}`,
			`{"model": "shop.line", "pk": 12, "fields": {"order": 2, "product": 6}}`},
		"shop.node": {`{"model": "shop.node", "pk": 3, "fields": {"parent": 2}}`,
			`{"model": "shop.node", "pk": 1, "fields": {"parent": null}}`,
			`{"model": "shop.node", "pk": 2, "fields": {"parent": 1}}`,
			`{"model": "shop.node", "pk": 4, "fields": {"parent": null}}`},
		"shop.note": {`{"model": "shop.note", "pk": 30, "fields": {"order": 1}}`, `{"model": "shop.note", "pk": 31, "fields": {"order": 2}}`},
	}
}

func sorted(m map[int64]bool) []int64 { return slices.Sorted(maps.Keys(m)) }

func TestResolve(t *testing.T) {
	desc, err := platform.Parse([]byte(shop))
	if err != nil {
		t.Fatal(err)
	}
	seed := func(label string, pk int64) Seed {
		m, _ := desc.Model(label)
		return Seed{Flag: "--select " + label, Model: m, PK: pk}
	}
	type want struct {
		selected, needed map[string][]int64
		links            []Link // of shop.order tags
		relinks          []Link // of shop.note order
		files            []string
	}
	tests := []struct {
		name string
		live memLive
		seed Seed
		want want
	}{
		{"an order: its lines and links; the product and tag the live database lacks", memLive{"shop.customer": {1}, "shop.product": {6}, "shop.tag": {8}},
			seed("shop.order", 1), want{
				selected: map[string][]int64{"shop.order": {1}, "shop.line": {10, 11}},
				needed:   map[string][]int64{"shop.product": {5}, "shop.tag": {7}},
				links:    []Link{{1, 7}, {1, 8}}, relinks: []Link{{30, 1}}, files: []string{"p/5.png"}, // product 6 is live: not written
			}},
		{"into an empty database everything referenced comes too", memLive{},
			seed("shop.line", 12), want{
				selected: map[string][]int64{"shop.line": {12}},
				needed:   map[string][]int64{"shop.order": {2}, "shop.customer": {1}, "shop.product": {6}, "shop.tag": {8}},
				links:    []Link{{2, 8}}, files: []string{"p/6.png"},
			}},
		{"a self cascade is followed to the leaves", memLive{},
			seed("shop.node", 1), want{selected: map[string][]int64{"shop.node": {1, 2, 3}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Resolve(context.Background(), desc, backup(), tt.live, []Seed{tt.seed})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range desc.Models {
				r := c.Of(m.Label)
				if got := sorted(r.Selected); !slices.Equal(got, tt.want.selected[m.Label]) {
					t.Errorf("%s selected %v, want %v", m.Label, got, tt.want.selected[m.Label])
				}
				if got := sorted(r.Needed); !slices.Equal(got, tt.want.needed[m.Label]) {
					t.Errorf("%s needed %v, want %v", m.Label, got, tt.want.needed[m.Label])
				}
			}
			links := slices.SortedFunc(maps.Keys(c.Of("shop.order").Links["tags"]), func(a, b Link) int { return int(a.Target - b.Target) })
			if !slices.Equal(links, tt.want.links) {
				t.Errorf("links %v, want %v", links, tt.want.links)
			}
			if got := c.Of("shop.note").Relinks["order"]; !slices.Equal(got, tt.want.relinks) {
				t.Errorf("relinks %v, want %v", got, tt.want.relinks)
			}
			if got := c.Files(nil); !slices.Equal(got, tt.want.files) && len(got)+len(tt.want.files) > 0 {
				t.Errorf("files %v, want %v", got, tt.want.files)
			}
		})
	}
}

func TestResolveMissing(t *testing.T) {
	desc, err := platform.Parse([]byte(shop))
	if err != nil {
		t.Fatal(err)
	}
	order, _ := desc.Model("shop.order")
	src := backup()
	_, err = Resolve(context.Background(), desc, src, memLive{}, []Seed{{Flag: "--select shop.order=9", Model: order, PK: 9}})
	if outcome.Of(err).Code != 2 || !strings.Contains(err.Error(), "--select shop.order=9: the backup holds no shop.order with pk 9") {
		t.Fatalf("unknown seed: %v", err)
	}
	src["shop.product"] = src["shop.product"][:1] // product 6 lost from the backup
	_, err = Resolve(context.Background(), desc, src, memLive{}, []Seed{{Flag: "--select shop.order=1", Model: order, PK: 1}})
	if err == nil || !strings.Contains(err.Error(), "shop.line pk 11 references shop.product pk 6, which neither the target database nor the backup holds") {
		t.Fatalf("missing reference: %v", err)
	}
}

// Primary and foreign keys come from a backup's fixtures, which may be damaged or crafted:
// whatever the value, intValue never panics; an integer it reads is the value's own (a JSON
// number, or a string holding one, as Django writes either), and null is no key.
func FuzzIntValue(f *testing.F) {
	for _, s := range []string{`7`, ` -12 `, `"42"`, `" 5 "`, `null`, `[1, "a"]`, `"x"`, `1e3`, `9223372036854775808`, `"\u0031"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		v, ok, err := intValue(raw)
		switch {
		case err != nil && ok:
			t.Fatalf("%q: an error and a value %d", raw, v)
		case err != nil:
			return
		case !ok:
			if strings.TrimSpace(string(raw)) != "null" {
				t.Fatalf("%q read as null", raw)
			}
			return
		}
		var text string
		if err := json.Unmarshal(raw, &text); err != nil {
			text = string(raw) // a number, not a string
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64); err != nil || n != v {
			t.Fatalf("%q read as %d (its text %q)", raw, v, text)
		}
	})
}
