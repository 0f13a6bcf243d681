package messages

import "testing"

func TestPeekTask(t *testing.T) {
	for _, tc := range []struct {
		name, data, run, id string
		version             int
	}{
		{"future version", `{"v":3,"run":"r1","id":"t1","kind":"new-kind"}`, "r1", "t1", 3},
		{"no version", `{"run":"r1","id":"t1"}`, "r1", "t1", 0},
		{"version of another type", `{"v":"2","run":"r1","id":"t1"}`, "r1", "t1", 0},
		{"id that is no subject token", `{"v":2,"run":"r1","id":"a.b"}`, "r1", "", 2},
		{"run that is no subject token", `{"v":2,"run":"r 1","id":"t1"}`, "", "t1", 2},
		{"id of another type", `{"v":2,"run":"r1","id":7}`, "r1", "", 2},
		{"not JSON", `<task/>`, "", "", 0},
		{"JSON but no object", `[1,2]`, "", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run, id, v := PeekTask([]byte(tc.data))
			if run != tc.run || id != tc.id || v != tc.version {
				t.Errorf("PeekTask(%s) = %q, %q, %d; want %q, %q, %d", tc.data, run, id, v, tc.run, tc.id, tc.version)
			}
		})
	}
}
