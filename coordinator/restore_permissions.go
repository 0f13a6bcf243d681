package coordinator

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// checkTargetPermissions refuses, before anything changes, a restore of rows that name auth
// permissions by id (users' user_permissions) into a target that gives one of those ids to
// another permission than the backup recorded, or to none: ids follow the order migrations
// ran in, so loading the ids as they are would grant other permissions than the source's.
// A backup that recorded none (older, or its users had no permissions) is not checked.
func checkTargetPermissions(ctx context.Context, db *database.DB, meta *layout.Metadata, models []platform.Model) error {
	if len(meta.Permissions) == 0 || !namesPermissions(models) {
		return nil
	}
	ids := make([]int64, 0, len(meta.Permissions))
	for k := range meta.Permissions {
		id, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			return fmt.Errorf("%s: permissions: id %q is not an integer", layout.FileMetadata, k)
		}
		ids = append(ids, id)
	}
	return checkPermissionIDs(ctx, db, meta, ids, "or leave accounts.user out (--models)")
}

// checkPermissionIDs refuses a restore that writes links to the auth permissions ids when the
// target gives one of them another permission than the backup recorded, or none; an id the
// backup did not record (an older backup) is not checked. remedy is what else the operator
// may do, beside migrating the target as the source was.
func checkPermissionIDs(ctx context.Context, db *database.DB, meta *layout.Metadata, ids []int64, remedy string) error {
	ids = slices.DeleteFunc(slices.Clone(ids), func(id int64) bool {
		_, ok := meta.Permissions[strconv.FormatInt(id, 10)]
		return !ok
	})
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	live, err := db.PermissionNames(ctx, ids)
	if err != nil {
		return fmt.Errorf("check the target's auth permissions: %w", err)
	}
	var bad []string
	for _, id := range ids {
		want := meta.Permissions[strconv.FormatInt(id, 10)]
		switch got, ok := live[id]; {
		case !ok:
			bad = append(bad, fmt.Sprintf("id %d (%s) is not in the target", id, want))
		case got != want:
			bad = append(bad, fmt.Sprintf("id %d is %s in the target, %s in the backup", id, got, want))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return outcome.Errorf(outcome.Refused, "restore refused: users' permissions name auth permissions by id, and the target's ids are not the source's (they follow the order migrations ran in): %s; loading them would grant other permissions. Nothing was changed: migrate the target as the source was, %s",
		nameSome(bad, len(bad), "; "), remedy)
}

// permissionIDs are the auth permission ids the selection's links name (users'
// user_permissions): the ids a selective restore writes.
func (s *selection) permissionIDs() []int64 {
	var ids []int64
	for _, r := range s.closure.Models() {
		for _, f := range r.Model.Fields {
			if f.To != permissionModel || !f.IsManyToMany() {
				continue
			}
			for l := range r.Links[f.Name] {
				ids = append(ids, l.Target)
			}
		}
	}
	return ids
}

// namesPermissions tells whether any of models names auth permissions by id.
func namesPermissions(models []platform.Model) bool {
	for _, m := range models {
		for _, f := range m.Fields {
			if f.To == permissionModel && f.IsManyToMany() {
				return true
			}
		}
	}
	return false
}
