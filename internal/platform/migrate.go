package platform

import "fmt"

// ContentType is a django_content_type row.
type ContentType struct{ App, Model string }

// ContentTypes are the django_content_type rows `migrate` creates, in its order (ids from 1).
var ContentTypes = []ContentType{
	{"auth", "permission"},
	{"auth", "group"},
	{"contenttypes", "contenttype"},
	{"books", "author"},
	{"books", "book"},
	{"books", "chapter"},
	{"books", "language"},
	{"books", "chaptermedia"},
	{"books", "changelog"},
	{"books", "bookfile"},
	{"accounts", "user"},
	{"accounts", "bookcollaborator"},
	{"accounts", "translationassignment"},
}

// permissionModels are the verbose names of the content types, in content type order.
var permissionModels = []string{
	"permission", "group", "content type", "author", "book", "chapter", "language",
	"chapter media", "change log", "book file", "user", "book collaborator", "translation assignment",
}

// Permission is an auth_permission row.
type Permission struct {
	ID            int64
	Name          string
	ContentTypeID int64
	Codename      string
}

// Permissions are the auth_permission rows `migrate` creates: add, change, delete and view for
// each content type, ids 1 to 52. Backups of users refer to them by id (user_permissions).
func Permissions() []Permission {
	verbs := []string{"add", "change", "delete", "view"}
	out := make([]Permission, 0, len(permissionModels)*4)
	for ct, name := range permissionModels {
		for _, v := range verbs {
			out = append(out, Permission{
				ID: int64(len(out) + 1), Name: fmt.Sprintf("Can %s %s", v, name),
				ContentTypeID: int64(ct + 1), Codename: v + "_" + ContentTypes[ct].Model,
			})
		}
	}
	return out
}

// Migration is a django_migrations row.
type Migration struct{ App, Name string }

// Migrations are the django_migrations rows, in the order migrate applies them.
var Migrations = []Migration{
	{"accounts", "0001_initial"},
	{"books", "0001_initial"},
	{"contenttypes", "0001_initial"},
	{"contenttypes", "0002_remove_content_type_name"},
	{"auth", "0001_initial"},
	{"auth", "0002_alter_permission_name_max_length"},
	{"auth", "0003_alter_user_email_max_length"},
	{"auth", "0004_alter_user_username_opts"},
	{"auth", "0005_alter_user_last_login_null"},
	{"auth", "0006_require_contenttypes_0002"},
	{"auth", "0007_alter_validators_add_error_messages"},
	{"auth", "0008_alter_user_username_max_length"},
	{"auth", "0009_alter_user_last_name_max_length"},
	{"auth", "0010_alter_group_name_max_length"},
	{"auth", "0011_update_proxy_permissions"},
	{"auth", "0012_alter_user_first_name_max_length"},
	{"accounts", "0002_initial"},
}
