//! The word lists and templates of the raw web (`raw.rs`): boilerplate lines, foreign-language
//! fact templates, spam keywords, markup debris, gambling promotions and the hosts of every
//! site. Written by us; slots in braces are filled by [`super::lang::fill`].

/// A boilerplate line and whether C4's line rules (fewer than 3 words, "javascript", a
/// policy phrase) remove it. The flag documents the design (about two thirds of planted
/// lines are catchable); scoring never reads it.
pub(super) const BOILERPLATE: &[(&str, bool)] = &[
    ("Home", true),
    ("Menu", true),
    ("Search", true),
    ("Share", true),
    ("Tweet", true),
    ("Advertisement", true),
    ("Read more »", true),
    ("Log in", true),
    ("Sign up", true),
    ("Next post", true),
    ("Previous post", true),
    ("Back to top", false),
    ("Please enable JavaScript to view the comments.", true),
    ("JavaScript is disabled in your browser.", true),
    ("This site uses cookies to improve your experience.", true),
    (
        "We use cookies to personalise content. By continuing you accept our use of cookies.",
        true,
    ),
    ("Terms of Use · Privacy Policy · Contact", true),
    ("Read our cookie policy for details.", true),
    ("Subscribe to our newsletter for weekly updates.", false),
    ("Copyright © {year} {site}. All rights reserved.", false),
    ("Skip to main content", false),
    ("Posted by admin on {day} {month} {year}", false),
    ("You are here: Home › {section}", false),
    (
        "Share this article on Facebook, Twitter or by e-mail.",
        false,
    ),
    ("Related posts:", true),
    ("Leave a comment", false),
    ("Home | About us | Contact | Archive", false),
];

pub(super) const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Hosts of the clean sites, per domain (in [`super::docs::Domain::ALL`]'s order), and the
/// path each puts before a page's slug.
pub(super) const HOSTS: [[(&str, &str); 3]; 7] = [
    [
        ("www.whoiswho-online.org", "/people/"),
        ("biographies.lifenotes.net", "/bio/"),
        ("famousfolk.example.com", "/profiles/"),
    ],
    [
        ("stories.bedtimetales.net", "/story/"),
        ("www.shortreads.org", "/read/"),
        ("tales.pagecorner.com", "/p/"),
    ],
    [
        ("forum.askaround.com", "/t/"),
        ("www.chatlogs.net", "/thread/"),
        ("qa.townsquare.org", "/questions/"),
    ],
    [
        ("www.openpedia.org", "/wiki/"),
        ("encyclo.worldfacts.net", "/entry/"),
        ("atlas.placesandfirms.com", "/article/"),
    ],
    [
        ("www.mathdrills.edu", "/worksheets/"),
        ("homework.sumhelp.org", "/problems/"),
        ("kids.countalong.com", "/exercise/"),
    ],
    [
        ("snippets.devnotes.io", "/s/"),
        ("www.pastecode.net", "/view/"),
        ("gist.codecorner.dev", "/g/"),
    ],
    [
        ("records.townregistry.org", "/residents/"),
        ("www.censusdata.net", "/tables/"),
        ("directory.localpeople.com", "/list/"),
    ],
];

/// One foreign language of the raw web: its code, fact templates (slots `{name}`,
/// `{year}`, `{town}`, `{org}`, `{pet}`, `{petname}`, `{sib}`), filler sentences (`{town}`)
/// and its pets in the world's order (dog, cat, horse, rabbit, parrot, goldfish).
pub(super) struct Foreign {
    pub code: &'static str,
    /// The host of its news site.
    pub host: &'static str,
    pub facts: &'static [&'static str],
    pub fillers: &'static [&'static str],
    pub pets: [&'static str; 6],
}

pub(super) const FOREIGN: [Foreign; 6] = [
    Foreign {
        code: "de",
        host: "www.nachrichten-heute.de",
        facts: &[
            "{name} wurde im Jahr {year} in {town} geboren.",
            "{name} lebt seit vielen Jahren in {town}.",
            "{name} arbeitet bei {org} und ist dort sehr beliebt.",
            "Das Haustier von {name} ist ein {pet} namens {petname}.",
            "{sib} ist das Geschwister von {name}, die beiden sehen sich oft.",
            "Nach der Schule zog {name} nach {town}, wo die Familie noch heute wohnt.",
            "{name} kam {year} in {town} zur Welt.",
            "Seit einigen Jahren ist {name} bei {org} angestellt.",
            "{name} hat einen {pet}, der {petname} heißt.",
            "Zur Familie von {name} gehört auch {sib}.",
            "Die Heimatstadt von {name} ist {town}.",
        ],
        fillers: &[
            "Die Stadt {town} liegt an einem kleinen Fluss und hat einen schönen Marktplatz.",
            "Am Wochenende gehen viele Leute aus {town} im Wald spazieren.",
            "Das Wetter war in diesem Sommer besonders warm und trocken.",
            "Weitere Informationen finden Sie in unserem Archiv.",
            "Die Nachbarn erzählen gern Geschichten über die alten Zeiten.",
            "Im Herbst findet in {town} ein großes Fest mit Musik und Essen statt.",
            "Viele Besucher kommen jedes Jahr nach {town}, um die alte Brücke zu sehen.",
            "Der Bürgermeister hat neue Pläne für den Bahnhof vorgestellt.",
            "Ein Leser schrieb uns, dass er die Geschichte sehr spannend fand.",
        ],
        pets: ["Hund", "Kater", "Pferd", "Hase", "Papagei", "Goldfisch"],
    },
    Foreign {
        code: "es",
        host: "www.noticias-del-dia.es",
        facts: &[
            "{name} nació en {town} en el año {year}.",
            "{name} vive en {town} desde hace muchos años.",
            "{name} trabaja en {org} y sus compañeros lo aprecian mucho.",
            "La mascota de {name} es un {pet} que se llama {petname}.",
            "{sib} es hermano de {name} y se ven todos los domingos.",
            "Después de la escuela, {name} se mudó a {town} con toda la familia.",
            "{name} vino al mundo en {town} en {year}.",
            "Desde hace algunos años, {name} está empleado en {org}.",
            "{name} tiene un {pet} llamado {petname} que le acompaña a todas partes.",
            "{sib} forma parte de la familia de {name}.",
            "La ciudad natal de {name} es {town}.",
        ],
        fillers: &[
            "La ciudad de {town} tiene una plaza mayor muy bonita y un mercado antiguo.",
            "Los fines de semana mucha gente de {town} pasea por el parque.",
            "Este verano el tiempo fue especialmente caluroso y seco.",
            "Puede encontrar más información en nuestro archivo.",
            "Los vecinos cuentan historias de los viejos tiempos.",
            "En otoño se celebra en {town} una gran fiesta con música y comida.",
            "Cada año muchos visitantes llegan a {town} para ver el puente viejo.",
            "El alcalde presentó nuevos planes para la estación de tren.",
            "Un lector nos escribió que la historia le pareció muy interesante.",
        ],
        pets: ["perro", "gato", "caballo", "conejo", "loro", "pez"],
    },
    Foreign {
        code: "pt",
        host: "www.noticias-hoje.com.br",
        facts: &[
            "{name} nasceu em {town} no ano de {year}.",
            "{name} mora em {town} há muitos anos.",
            "{name} trabalha na {org} e os colegas gostam muito dele.",
            "O animal de estimação de {name} é um {pet} chamado {petname}.",
            "{sib} é irmão de {name} e os dois se encontram aos domingos.",
            "Depois da escola, {name} mudou-se para {town} com a família.",
            "{name} veio ao mundo em {town} em {year}.",
            "Há alguns anos, {name} é funcionário da {org}.",
            "{name} tem um {pet} chamado {petname} que o acompanha por toda parte.",
            "{sib} também faz parte da família de {name}.",
            "A cidade natal de {name} é {town}.",
        ],
        fillers: &[
            "A cidade de {town} tem uma praça muito bonita e um mercado antigo.",
            "Nos fins de semana muita gente de {town} passeia no parque.",
            "Neste verão o tempo foi especialmente quente e seco.",
            "Você pode encontrar mais informações no nosso arquivo.",
            "Os vizinhos contam histórias dos velhos tempos.",
            "No outono acontece em {town} uma grande festa com música e comida.",
            "Todos os anos muitos visitantes chegam a {town} para ver a ponte velha.",
            "O prefeito apresentou novos planos para a estação de trem.",
            "Um leitor nos escreveu dizendo que achou a história muito interessante.",
        ],
        pets: ["cão", "gato", "cavalo", "coelho", "papagaio", "peixe"],
    },
    Foreign {
        code: "tr",
        host: "www.gunun-haberleri.com.tr",
        facts: &[
            "{name}, {year} yılında {town} şehrinde doğdu.",
            "{name} uzun yıllardır {town} şehrinde yaşıyor.",
            "{name} {org} şirketinde çalışıyor ve iş arkadaşları onu çok seviyor.",
            "{name} adlı kişinin {petname} isimli bir {pet} var.",
            "{sib}, {name} ile kardeştir ve her pazar görüşürler.",
            "Okuldan sonra {name} ailesiyle birlikte {town} şehrine taşındı.",
            "{name} {year} yılında {town} şehrinde dünyaya geldi.",
            "Birkaç yıldır {name} {org} bünyesinde çalışıyor.",
            "{name}, {petname} adını verdiği {pet} ile her yere gidiyor.",
            "{sib} de {name} ailesinin bir üyesi.",
            "{name} aslen {town} şehrinden.",
        ],
        fillers: &[
            "{town} şehrinin güzel bir meydanı ve eski bir pazarı var.",
            "Hafta sonları {town} halkının çoğu parkta yürüyüş yapıyor.",
            "Bu yaz hava özellikle sıcak ve kuru geçti.",
            "Daha fazla bilgiyi arşivimizde bulabilirsiniz.",
            "Komşular eski günlerle ilgili hikâyeler anlatmayı sever.",
            "Sonbaharda {town} şehrinde müzik ve yemekle büyük bir şenlik yapılır.",
            "Her yıl pek çok ziyaretçi eski köprüyü görmek için {town} şehrine geliyor.",
            "Belediye başkanı tren istasyonu için yeni planlarını açıkladı.",
            "Bir okuyucumuz bize hikâyeyi çok ilginç bulduğunu yazdı.",
        ],
        pets: ["köpek", "kedi", "at", "tavşan", "papağan", "japon balığı"],
    },
    Foreign {
        code: "it",
        host: "www.notizie-oggi.it",
        facts: &[
            "{name} è nato a {town} nel {year}.",
            "{name} vive a {town} da molti anni.",
            "{name} lavora presso {org} ed è molto stimato dai colleghi.",
            "L'animale domestico di {name} è un {pet} di nome {petname}.",
            "{sib} è il fratello di {name} e i due si vedono ogni domenica.",
            "Dopo la scuola {name} si è trasferito a {town} con tutta la famiglia.",
            "{name} è venuto al mondo a {town} nel {year}.",
            "Da alcuni anni {name} è impiegato presso {org}.",
            "{name} ha un {pet} di nome {petname} che lo accompagna ovunque.",
            "Anche {sib} fa parte della famiglia di {name}.",
            "La città natale di {name} è {town}.",
        ],
        fillers: &[
            "La città di {town} ha una bella piazza e un mercato antico.",
            "Nel fine settimana molti abitanti di {town} passeggiano nel parco.",
            "Quest'estate il tempo è stato particolarmente caldo e secco.",
            "Ulteriori informazioni sono disponibili nel nostro archivio.",
            "I vicini raccontano volentieri storie dei vecchi tempi.",
            "In autunno a {town} si tiene una grande festa con musica e cibo.",
            "Ogni anno molti visitatori arrivano a {town} per vedere il vecchio ponte.",
            "Il sindaco ha presentato nuovi progetti per la stazione ferroviaria.",
            "Un lettore ci ha scritto che la storia gli è sembrata molto interessante.",
        ],
        pets: [
            "cane",
            "gatto",
            "cavallo",
            "coniglio",
            "pappagallo",
            "pesce rosso",
        ],
    },
    Foreign {
        code: "nl",
        host: "www.nieuws-vandaag.nl",
        facts: &[
            "{name} is in {year} geboren in {town}.",
            "{name} woont al vele jaren in {town}.",
            "{name} werkt bij {org} en is daar erg geliefd.",
            "Het huisdier van {name} is een {pet} die {petname} heet.",
            "{sib} is de broer of zus van {name} en ze zien elkaar elke zondag.",
            "Na de school verhuisde {name} met het hele gezin naar {town}.",
            "{name} kwam in {year} in {town} ter wereld.",
            "Sinds een paar jaar is {name} in dienst bij {org}.",
            "{name} heeft een {pet} met de naam {petname} die overal mee naartoe gaat.",
            "Ook {sib} hoort bij de familie van {name}.",
            "De geboorteplaats van {name} is {town}.",
        ],
        fillers: &[
            "De stad {town} ligt aan een kleine rivier en heeft een mooi marktplein.",
            "In het weekend wandelen veel mensen uit {town} in het bos.",
            "Het weer was deze zomer bijzonder warm en droog.",
            "Meer informatie vindt u in ons archief.",
            "De buren vertellen graag verhalen over vroeger.",
            "In de herfst is er in {town} een groot feest met muziek en eten.",
            "Elk jaar komen veel bezoekers naar {town} om de oude brug te zien.",
            "De burgemeester heeft nieuwe plannen voor het station gepresenteerd.",
            "Een lezer schreef ons dat hij het verhaal erg spannend vond.",
        ],
        pets: ["hond", "kat", "paard", "konijn", "papegaai", "goudvis"],
    },
];

/// Spam: products and the phrases stuffed around them (`{kw}` a keyword, `{town}` a
/// town of the world).
pub(super) const SPAM_PRODUCTS: &[&str] = &[
    "cheap flights",
    "hotel deals",
    "replica watches",
    "payday loans",
    "weight loss pills",
    "car insurance",
    "online casino",
    "used cars",
    "designer handbags",
    "free ringtones",
    "vpn discount",
    "cheap essays",
];

pub(super) const SPAM_PHRASES: &[&str] = &[
    "best {kw} {town}",
    "cheap {kw} in {town}",
    "buy {kw} online {town}",
    "{kw} {town} discount",
    "{town} {kw} near me",
    "top {kw} {town} 2024",
    "{kw} for sale {town}",
    "{kw} {town} reviews",
];

pub(super) const SPAM_SENTENCES: &[&str] = &[
    "Looking for the best {kw} in {town}? We have the best {kw} in {town} at the lowest price.",
    "Buy {kw} online today and save on {kw} in {town}.",
    "Our {kw} are the cheapest {kw} in {town}, cheap {kw} for everyone.",
    "Click here for {kw} in {town} and get {kw} now.",
    "The best {kw} deals: {kw} {town}, {kw} online, {kw} cheap.",
    "Get your {kw} in {town} with free shipping on all {kw}.",
];

/// Markup debris lines (`{n}` a number, `{w}` a word).
pub(super) const TAGS: &[&str] = &[
    "<div class=\"container\">",
    "</div>",
    "<div id=\"sidebar\" class=\"col-md-{n}\">",
    "<ul class=\"nav navbar-nav\">",
    "<li><a href=\"/{w}\">{w}</a></li>",
    "</ul>",
    "<span class=\"meta\">",
    "</span>",
    "<img src=\"/img/{w}_{n}.jpg\" alt=\"\" width=\"{n}\">",
    "<br/><br/>",
    "<p class=\"lead\"></p>",
    "<!-- /.row -->",
    "<table border=\"0\" cellpadding=\"{n}\"><tr><td>",
    "</td></tr></table>",
    "<input type=\"hidden\" name=\"{w}\" value=\"{n}\"/>",
];

pub(super) const SCRIPT: &[&str] = &[
    "var _gaq = _gaq || []; _gaq.push(['_setAccount', 'UA-{n}-1']);",
    "function init() { document.getElementById('{w}').style.display = 'none'; }",
    ".header { margin: 0; padding: {n}px; background: #fff; }",
    "@media (max-width: {n}px) { .nav { display: none; } }",
    "window.dataLayer = window.dataLayer || []; function gtag(){dataLayer.push(arguments);}",
    "$(document).ready(function() { $('.{w}').slideToggle({n}); });",
    "if (typeof {w} === 'undefined') { var {w} = {}; }",
];

pub(super) const ENTITIES: &[&str] = &[
    "&nbsp;", "&amp;", "&#8217;", "&quot;", "&lt;", "&gt;", "&#160;", "&raquo;", "&copy;",
    "&#x27;", "&hellip;", "&mdash;",
];

pub(super) const LOREM: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do \
eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis \
nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure \
dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur.";

/// Blocklisted-looking hosts (gambling, pirated streams, counterfeit goods) and the
/// sentences of their promotions (`{town}`, `{n}`).
pub(super) const BLOCKED_HOSTS: &[&str] = &[
    "mega-jackpot-slots.bet",
    "free-spins-bonus.casino",
    "watch-movies-free-hd.stream",
    "replica-luxury-outlet.biz",
    "instant-payday-cash.loan",
    "hot-singles-tonight.date",
];

pub(super) const PROMO: &[&str] = &[
    "Welcome to the most popular place for players from {town} and everywhere else.",
    "Sign up today and receive a welcome bonus of {n} free spins on all of our games.",
    "Thousands of people have already joined, and many of them won large prizes last month.",
    "Our friendly support team is available every day of the week to answer your questions.",
    "Withdrawals are processed quickly, usually within {n} hours, with no hidden fees.",
    "We offer the newest titles as soon as they are released, and all of them are free to try.",
    "Invite a friend and both of you will get an extra reward when they make their first deposit.",
    "The offer is valid for new members only and cannot be combined with other promotions.",
    "Read the reviews of our happy customers and see why they keep coming back to us.",
    "Play on your phone or your computer, at home or on the way to work.",
];
