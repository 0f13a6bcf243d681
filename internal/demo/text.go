package demo

// Text pools. Between them they hold what a serializer or a copier can get wrong: many scripts
// (CJK, Hangul, kana, Cyrillic, Arabic right-to-left, Devanagari, Thai), emoji with ZWJ
// sequences and variation selectors, characters outside the BMP, combining marks, quotes and
// backslashes, \n and \r\n, tabs, other control characters (never NUL: PostgreSQL text refuses
// it), U+2028, HTML-looking text, and empty strings.

var languages = []struct{ code, name string }{
	{"en", "English"},
	{"zh", "中文 (Chinese)"},
	{"ko", "한국어"},
	{"ja", "日本語"},
	{"es", "Español"},
	{"fr", "Français"},
	{"ru", "Русский"},
	{"ar", "العربية"},
	{"hi", "हिन्दी"},
	{"th", "ภาษาไทย"},
	{"vi", "Tiếng Việt"},
	{"pt-br", "Português (Brasil)"},
	{"zh-hant", "繁體中文"},
	{"de", "Deutsch"},
	{"id", "Bahasa Indonesia"},
	{"tr", "Türkçe"},
}

var authorNames = []string{
	"李白",
	"Conan O'Brien-Smith",
	"村上 春樹",
	"김영하",
	"Фёдор Достоевский",
	"نجيب محفوظ",
	"Zoë \"Z\" Müller",
	"J.R.R. T\\olkien",
}

var bios = []string{
	"",
	"Writes xianxia.\nLives in Hangzhou.\n写仙侠小说。",
	"Line one\r\nLine two with CRLF\r\n",
	"Quotes: \"double\", 'single', `back`; backslash: C:\\Users\\writer\\novels",
	"🐉🔥 Dragon fan. 👩‍💻 Coder by day. 🏳️‍🌈",
	"Tabs\there\tand control chars \x01\x1f\x7f end",
	"مرحبا بالعالم — كاتب روايات",
	"Combining: e\u0301 vs é; astral: 𠀀 𝔘𝔫𝔦𝔠𝔬𝔡𝔢; line sep:\u2028next",
	"<b>bold</b> &amp; <script>alert('x')</script>",
	"   leading and trailing spaces   ",
}

var firstNames = []string{"Min-jun", "Yuki", "José", "D'Arcy", "Олег", "محمد", "", "Łukasz", "अर्जुन", "สมชาย"}

var lastNames = []string{"김", "佐藤", "Núñez", "O'Neil", "Иванов", "", "Smith \"Jr\"", "Nguyễn", "\\escaped\\"}

var displayNames = []string{
	"Wei 🐼",
	"민준",
	"ゆき",
	"Pepe \"el traductor\"",
	"👩‍💻 dev",
	"",
	"Zoë\tTab",
	"<b>bold</b> & co",
	"Ünïcödé Nåme",
}

var bookTitles = []string{
	"The \"Dragon\" King's Return 龙王归来 🐉",
	"회귀한 마법사의 \\귀환\\",
	"転生したらスライムだった件",
	"Reverend Insanity",
	"Возвращение короля",
	"سيف الظلام",
	"Lord of the Mysteries: Book\tTwo",
	"Ｆｕｌｌｗｉｄｔｈ & <Half>",
	"The Beginning After The End",
	"Solo Leveling ⚔️",
}

var descriptions = []string{
	"A young cultivator rises.\nHe faces \"demons\" and 'gods'.\n\nBook one of three.",
	"Windows line endings\r\nsecond line\r\n",
	"",
	"Tabs\tand\tbackslashes \\ and a trailing newline\n",
	"異世界に転生した主人公の物語。🌸",
	"Описание книги на русском языке.",
	"Control \x02 chars \x1b[0m and DEL \x7f",
	"<p>HTML &amp; entities &lt;kept&gt;</p>",
}

var chapterTitles = []string{
	"Chapter %d: The Beginning",
	"Chapter %d: Ch. with\nnewline",
	"Chapter %d: Interlude 🌙",
	"Chapter %d: 开端 \"序章\"",
	"Chapter %d: The Traitor's Gambit",
	"Chapter %d: C:\\path\\to\\doom",
	"제%d장: 던전",
	"Chapter %d:\r\nWindows",
}

var captions = []string{
	"",
	"Map of the continent 大陆地图",
	"Opening theme 🎵",
	"Author's note",
	"Tab\tseparated \"caption\"",
	"Карта мира",
}

var contentWords = []string{
	"the", "qi", "sect", "realm", "dragon", "jade", "night", "storm", "river", "heaven",
	"breakthrough", "formation", "alchemy", "disciple", "tribulation", "master", "palace",
	"修炼", "宗门", "丹药", "天道", "长老", "灵气", "突破", "剑意",
	"헌터", "던전", "레벨", "스킬",
	"冒険者", "勇者", "魔法", "異世界",
	"dragón", "espada", "reino",
	"🔥", "⚔️", "\"quoted\"", "it's", "back\\slash", "tab\there",
}

var chapterStatuses = []string{"draft", "scheduled", "published", "archived"}
var bookStatuses = []string{"draft", "ongoing", "completed", "hiatus"}
var mediaTypes = []string{"image", "audio", "video", "document"}
var mediaExts = map[string]string{"image": "png", "audio": "mp3", "video": "mp4", "document": "pdf"}
var changeActions = []string{"create", "update", "publish", "unpublish", "media"}
var collabRoles = []string{"co_author", "editor", "translator", "proofreader"}
var collabPerms = []string{"edit_chapters", "invite", "manage_media", "publish"}
var assignStatuses = []string{"pending", "in_progress", "review", "done", "rejected"}
