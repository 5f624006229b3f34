"""The CMSSW analyzers in ``analyzers/`` and ``poetml.schema`` must never drift apart.

There is no CMSSW here, so the C++ is not compiled; instead this test parses it.  For every
analyzer (``DEFINE_FWK_MODULE``) it collects each ``tree->Branch("name", &var)`` call, looks
up the declared C++ type of ``var`` among the class members, and checks that the set of
(branch, type) pairs equals what ``poetml.schema.POET_COLLECTIONS`` lists for that analyzer.
It also reads ``python/poet_cfg.py`` with :mod:`ast` (it cannot be imported without CMSSW)
and checks that each analyzer runs under the module label that is its TFileService
directory in the schema, that it is on the path, and that the parameters the C++ reads,
the configuration passes and ``fillDescriptions`` allows are the same.

The parser itself is tested on small inline snippets and on mutated copies of the real
sources (a renamed branch, a changed type, a missing ``clear()``) so that it demonstrably
fails when the two disagree.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from poetml import schema

REPO = Path(__file__).resolve().parents[1]
ANALYZERS = REPO / "analyzers"
PACKAGE = ANALYZERS / "PhysObjectExtractor"
CFG = PACKAGE / "python" / "poet_cfg.py"
#: Where `scram` expects the package: $CMSSW_BASE/src/PoetML/PhysObjectExtractor.
INCLUDE_PREFIX = "PoetML/PhysObjectExtractor/"


class ParseError(ValueError):
    """The C++ could not be parsed unambiguously; the message names the file and line."""


# --------------------------------------------------------------------------------------
# A small parser for the subset of C++ the analyzers use
# --------------------------------------------------------------------------------------

_TOKENS = re.compile(r'"(?:\\.|[^"\\\n])*"|//[^\n]*|/\*.*?\*/', re.DOTALL)


def strip_comments(text: str) -> str:
    """``text`` with C++ comments blanked out (newlines kept, so line numbers hold)."""

    def blank(m: re.Match[str]) -> str:
        s = m.group(0)
        if s.startswith('"'):
            return s
        return re.sub(r"[^\n]", " ", s)

    return _TOKENS.sub(blank, text)


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def normalize_type(ctype: str) -> str:
    """Canonical spelling of a C++ type: ``std::vector< float >`` -> ``std::vector<float>``."""
    ctype = re.sub(r"\s+", " ", ctype.strip())
    return re.sub(r"\s*([<>,:*&])\s*", r"\1", ctype).replace(",", ", ")


def _split_top(s: str, sep: str) -> list[str]:
    """Split ``s`` at ``sep`` outside <>, (), {} and []."""
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "<({[":
            depth += 1
        elif ch in ">)}]":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _class_body(text: str, name: str, where: str) -> str:
    m = re.search(rf"\bclass\s+{name}\b[^;{{]*\{{", text)
    if m is None:
        raise ParseError(f"{where}: no definition of class {name}")
    depth, i = 1, m.end()
    while depth and i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    if depth:
        raise ParseError(f"{where}: unbalanced braces in class {name}")
    return text[m.end() : i - 1]


def parse_members(body: str) -> dict[str, str]:
    """Data members declared in a class body: name -> normalized C++ type.

    Functions, nested bodies, ``using``/``typedef``/``friend`` are skipped; ``a, b;`` lists
    and ``= default`` initializers are understood.
    """
    statements, depth, cur = [], 0, []
    for ch in body:
        cur.append(ch)
        if ch in "{(":
            depth += 1
        elif ch in "})":
            depth -= 1
            if depth == 0 and ch == "}":
                statements.append("".join(cur))
                cur = []
        elif ch == ";" and depth == 0:
            statements.append("".join(cur)[:-1])
            cur = []
    members: dict[str, str] = {}
    for raw in statements:
        s = re.sub(r"\b(public|private|protected)\s*:(?!:)", " ", raw).strip()
        if not s or "(" in s or "{" in s or re.match(r"(using|typedef|friend|static|enum)\b", s):
            continue
        pieces = _split_top(s, ",")
        first = re.match(
            r"^(?P<type>.*?[\w>])\s*(?P<ptr>[*&]*)\s*(?P<name>\w+)\s*(=.*)?$",
            pieces[0].strip(),
            re.DOTALL,
        )
        if first is None:
            continue
        ctype = normalize_type(first["type"] + first["ptr"])
        members[first["name"]] = ctype
        for extra in pieces[1:]:
            m = re.match(r"^\s*(\w+)\s*(=.*)?$", extra, re.DOTALL)
            if m:
                members[m.group(1)] = ctype
    return members


_BRANCH = re.compile(
    r'(?P<tree>\w+)\s*->\s*Branch\s*\(\s*"(?P<name>[^"]+)"\s*,\s*&\s*(?P<var>\w+)\s*'
    r'(?:,\s*"(?P<leaflist>[^"]*)"\s*)?\)'
)
_LEAF_TYPES = {"F": "float", "I": "int", "D": "double", "O": "bool", "i": "unsigned int"}


@dataclass
class Analyzer:
    """What one analyzer source declares."""

    name: str
    path: str
    tree_var: str
    tree_name: str
    members: dict[str, str]
    #: branch name -> (bound variable, its declared C++ type)
    branches: dict[str, tuple[str, str]]
    parameters: set[str] = field(default_factory=set)
    described: set[str] = field(default_factory=set)
    cleared: set[str] = field(default_factory=set)
    assigned: set[str] = field(default_factory=set)
    fills: int = 0
    includes: list[str] = field(default_factory=list)

    @property
    def typed_branches(self) -> set[tuple[str, str]]:
        return {(name, ctype) for name, (_, ctype) in self.branches.items()}


def parse_analyzer(source: str, where: str = "<string>") -> Analyzer:
    """Parse one EDAnalyzer source file.  Raises :class:`ParseError` naming file and line
    when a ``Branch`` call cannot be read or binds a variable the class does not declare."""
    text = strip_comments(source)
    modules = re.findall(r"DEFINE_FWK_MODULE\s*\(\s*(\w+)\s*\)", text)
    if len(modules) != 1:
        raise ParseError(f"{where}: expected one DEFINE_FWK_MODULE, found {modules}")
    name = modules[0]
    members = parse_members(_class_body(text, name, where))

    trees = re.findall(r"(\w+)\s*=\s*\w+\s*->\s*make\s*<\s*TTree\s*>\s*\(\s*\"([^\"]+)\"", text)
    if len(trees) != 1:
        raise ParseError(f"{where}: expected one TFileService make<TTree>(...), found {trees}")
    tree_var, tree_name = trees[0]

    branches: dict[str, tuple[str, str]] = {}
    matched = set()
    for m in _BRANCH.finditer(text):
        matched.add(m.start())
        line = _line(text, m.start())
        if m["tree"] != tree_var:
            raise ParseError(f"{where}:{line}: Branch on {m['tree']!r}, not the tree {tree_var!r}")
        if m["name"] in branches:
            raise ParseError(f"{where}:{line}: branch {m['name']!r} is booked twice")
        if m["var"] not in members:
            raise ParseError(
                f"{where}:{line}: branch {m['name']!r} binds {m['var']!r}, which is not a "
                f"member of class {name}"
            )
        ctype = members[m["var"]]
        if m["leaflist"] is not None:
            leaf = m["leaflist"].rsplit("/", 1)[-1]
            if _LEAF_TYPES.get(leaf) != ctype:
                raise ParseError(
                    f"{where}:{line}: leaf list {m['leaflist']!r} does not match the type "
                    f"{ctype!r} of {m['var']!r}"
                )
        branches[m["name"]] = (m["var"], ctype)
    # Every Branch( call must have been understood: an unparsed one could hide a branch.
    for m in re.finditer(r"(\w+)\s*->\s*Branch\s*\(", text):
        if m.start() not in matched:
            raise ParseError(
                f"{where}:{_line(text, m.start())}: cannot parse this Branch call; write it "
                f'as {tree_var}->Branch("name", &member)'
            )

    return Analyzer(
        name=name,
        path=where,
        tree_var=tree_var,
        tree_name=tree_name,
        members=members,
        branches=branches,
        parameters=set(re.findall(r"getParameter\s*<[^;]*?>\s*\(\s*\"(\w+)\"", text)),
        described=set(re.findall(r"desc\s*\.\s*add\s*<[^;]*?>\s*\(\s*\"(\w+)\"", text)),
        cleared=set(re.findall(r"\b(\w+)\s*\.\s*clear\s*\(\s*\)", text)),
        assigned=set(re.findall(r"\b(\w+)\s*=(?!=)", text)),
        fills=len(re.findall(rf"\b{tree_var}\s*->\s*Fill\s*\(\s*\)", text)),
        includes=re.findall(r'#include\s+"([^"]+)"', text),
    )


def schema_branches(collection: schema.PoetCollection) -> set[tuple[str, str]]:
    return {(b.name, normalize_type(b.ctype)) for b in collection.branches}


def compare(analyzer: Analyzer, collection: schema.PoetCollection) -> list[str]:
    """Every way ``analyzer`` disagrees with ``collection`` (empty when they agree)."""
    problems = []
    if analyzer.name != collection.analyzer:
        problems.append(f"analyzer class {analyzer.name!r}, schema says {collection.analyzer!r}")
    if analyzer.tree_name != schema.POET_TREE:
        problems.append(f"tree {analyzer.tree_name!r}, schema says {schema.POET_TREE!r}")
    want = {name: ctype for name, ctype in schema_branches(collection)}
    have = {name: ctype for name, (_, ctype) in analyzer.branches.items()}
    for name in sorted(want.keys() - have.keys()):
        problems.append(f"branch {name!r} ({want[name]}) is in the schema but not booked")
    for name in sorted(have.keys() - want.keys()):
        problems.append(f"branch {name!r} ({have[name]}) is booked but not in the schema")
    for name in sorted(want.keys() & have.keys()):
        if want[name] != have[name]:
            problems.append(f"branch {name!r}: C++ type {have[name]!r}, schema says {want[name]!r}")
    for name, (var, ctype) in sorted(analyzer.branches.items()):
        if ctype.startswith("std::vector<") and var not in analyzer.cleared:
            problems.append(f"vector {var!r} (branch {name!r}) is never clear()ed between events")
        if not ctype.startswith("std::vector<") and var not in analyzer.assigned:
            problems.append(f"scalar {var!r} (branch {name!r}) is never assigned")
    if analyzer.fills != 1:
        problems.append(f"{analyzer.tree_var}->Fill() appears {analyzer.fills} times, expected 1")
    return problems


# --------------------------------------------------------------------------------------
# poet_cfg.py, read with ast
# --------------------------------------------------------------------------------------


@dataclass
class CfgModule:
    label: str
    plugin: str
    parameters: set[str]
    #: parameter -> its value expression, as source text
    values: dict[str, str] = field(default_factory=dict)


def _process_attr(node: ast.AST) -> str | None:
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "process"
    ):
        return node.attr
    return None


def _is_cms_call(node: ast.AST, what: str) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == what
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "cms"
    )


def parse_cfg(source: str) -> tuple[dict[str, CfgModule], set[str]]:
    """EDAnalyzers of a cmsRun configuration (label -> module) and every module label
    that appears in a ``cms.Path`` (including ``process.p += process.x``)."""
    tree = ast.parse(source)
    analyzers: dict[str, CfgModule] = {}
    paths: set[str] = set()
    on_path: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            label = _process_attr(node.targets[0])
            if label is None:
                continue
            if _is_cms_call(node.value, "EDAnalyzer"):
                call = node.value
                assert isinstance(call, ast.Call)
                plugin = call.args[0]
                if not (isinstance(plugin, ast.Constant) and isinstance(plugin.value, str)):
                    raise ParseError(f"process.{label}: plugin name is not a string literal")
                analyzers[label] = CfgModule(
                    label,
                    plugin.value,
                    {k.arg for k in call.keywords if k.arg},
                    {k.arg: ast.unparse(k.value) for k in call.keywords if k.arg},
                )
            elif _is_cms_call(node.value, "Path"):
                paths.add(label)
                on_path |= {a for n in ast.walk(node.value) if (a := _process_attr(n))}
        elif isinstance(node, ast.AugAssign) and _process_attr(node.target) in paths:
            on_path |= {a for n in ast.walk(node.value) if (a := _process_attr(n))}
    return analyzers, on_path


# --------------------------------------------------------------------------------------
# Fixtures over the real sources
# --------------------------------------------------------------------------------------


def _sources() -> list[Path]:
    return sorted([*PACKAGE.glob("src/*.cc"), *PACKAGE.glob("plugins/*.cc")])


@pytest.fixture(scope="module")
def analyzers() -> dict[str, Analyzer]:
    found: dict[str, Analyzer] = {}
    for path in _sources():
        parsed = parse_analyzer(path.read_text(), str(path.relative_to(REPO)))
        assert parsed.name not in found, f"{parsed.name} defined twice"
        found[parsed.name] = parsed
    return found


@pytest.fixture(scope="module")
def cfg() -> tuple[dict[str, CfgModule], set[str]]:
    return parse_cfg(CFG.read_text())


COLLECTIONS = list(schema.POET_COLLECTIONS.values())


def test_layout() -> None:
    assert (PACKAGE / "BuildFile.xml").is_file()
    assert CFG.is_file()
    assert (ANALYZERS / "README.md").is_file()
    assert _sources(), f"no analyzer sources under {PACKAGE}/src or plugins"


def test_every_analyzer_is_in_the_schema(analyzers: dict[str, Analyzer]) -> None:
    """No analyzer writes a tree poetml does not know about, and none is missing."""
    assert set(analyzers) == {c.analyzer for c in COLLECTIONS}


@pytest.mark.parametrize("collection", COLLECTIONS, ids=lambda c: c.name)
def test_branches_match_schema(analyzers: dict[str, Analyzer], collection) -> None:
    analyzer = analyzers[collection.analyzer]
    problems = compare(analyzer, collection)
    assert not problems, f"{analyzer.path} vs poetml.schema:\n  " + "\n  ".join(problems)
    # the comparison is of (branch, type) sets: say so explicitly
    assert analyzer.typed_branches == schema_branches(collection)


@pytest.mark.parametrize("collection", COLLECTIONS, ids=lambda c: c.name)
def test_cfg_label_is_schema_directory(cfg, collection) -> None:
    """TFileService names each analyzer's directory after its module label."""
    modules, on_path = cfg
    labels = {label: m for label, m in modules.items() if m.plugin == collection.analyzer}
    assert set(labels) == {collection.directory}, (
        f"{CFG.name}: {collection.analyzer} runs as {sorted(labels)}, "
        f"schema directory is {collection.directory!r}"
    )
    assert collection.directory in on_path, f"process.{collection.directory} is on no Path"


@pytest.mark.parametrize("collection", COLLECTIONS, ids=lambda c: c.name)
def test_cfg_parameters_match_cpp(analyzers, cfg, collection) -> None:
    """What the C++ reads == what the cfg passes == what fillDescriptions allows."""
    analyzer = analyzers[collection.analyzer]
    module = cfg[0][collection.directory]
    assert analyzer.parameters == module.parameters, (
        f"{analyzer.name}: C++ reads {sorted(analyzer.parameters)}, "
        f"cfg passes {sorted(module.parameters)}"
    )
    assert analyzer.described == analyzer.parameters


def test_muons_and_genparticles_share_the_selection(cfg) -> None:
    """muon_genpartidx indexes GenPart_* only if both analyzers select the same particles."""
    modules = cfg[0]
    muons = modules[schema.POET_COLLECTIONS["muon"].directory]
    gen = modules[schema.POET_COLLECTIONS["genparticle"].directory]
    assert muons.values["input_particle"] == gen.values["input_particle"]


def test_cfg_writes_myoutput_root() -> None:
    text = CFG.read_text()
    assert re.search(r'cms\.Service\(\s*"TFileService"', text)
    assert '"myoutput.root"' in text


def test_project_includes_resolve(analyzers) -> None:
    """Includes of this package's own headers point at files that exist."""
    for analyzer in analyzers.values():
        for inc in analyzer.includes:
            if inc.startswith(INCLUDE_PREFIX):
                assert (PACKAGE / inc[len(INCLUDE_PREFIX) :]).is_file(), f"{analyzer.path}: {inc}"


# --------------------------------------------------------------------------------------
# The parser and comparison fail when they should
# --------------------------------------------------------------------------------------

SNIPPET = """
class Toy : public edm::one::EDAnalyzer<edm::one::SharedResources> {
public:
  explicit Toy(const edm::ParameterSet&);
private:
  void analyze(const edm::Event&, const edm::EventSetup&) override;
  void helper() { int notAMember = 0; (void)notAMember; }
  const edm::EDGetTokenT<std::vector<int>> token_;
  TTree* mtree;
  int n;                      // counter
  std::vector< float > a_pt, a_eta;
  float met = 0.f;
  bool checked_ = false;
};
Toy::Toy(const edm::ParameterSet& c) {
  mtree = fs->make<TTree>("Events", "Events");
  mtree->Branch("count", &n);
  mtree->Branch("a_pt", &a_pt);
  // mtree->Branch("commented_out", &a_pt);
  /* mtree->Branch("also_commented", &a_eta); */
  mtree->Branch( "a_eta" , & a_eta );
  mtree->Branch("met", &met, "met/F");
}
void Toy::analyze(const edm::Event&, const edm::EventSetup&) {
  n = 0; a_pt.clear(); a_eta.clear(); met = 1.f;
  mtree->Fill();
}
DEFINE_FWK_MODULE(Toy);
"""


def test_parser_on_snippet() -> None:
    toy = parse_analyzer(SNIPPET, "toy.cc")
    assert toy.name == "Toy"
    assert (toy.tree_var, toy.tree_name) == ("mtree", "Events")
    assert toy.branches == {
        "count": ("n", "int"),
        "a_pt": ("a_pt", "std::vector<float>"),
        "a_eta": ("a_eta", "std::vector<float>"),
        "met": ("met", "float"),
    }
    assert toy.members["token_"] == "const edm::EDGetTokenT<std::vector<int>>"
    assert toy.members["mtree"] == "TTree*"
    assert "notAMember" not in toy.members
    assert toy.fills == 1


def test_parser_rejects_unbound_variable() -> None:
    bad = SNIPPET.replace('Branch("a_pt", &a_pt)', 'Branch("a_pt", &a_ptt)')
    with pytest.raises(ParseError, match=r"toy\.cc:\d+: branch 'a_pt' binds 'a_ptt'"):
        parse_analyzer(bad, "toy.cc")


def test_parser_rejects_unreadable_branch_call() -> None:
    bad = SNIPPET.replace('Branch("a_pt", &a_pt)', "Branch(name.c_str(), &a_pt)")
    with pytest.raises(ParseError, match="cannot parse this Branch call"):
        parse_analyzer(bad, "toy.cc")


def test_parser_rejects_wrong_leaflist() -> None:
    bad = SNIPPET.replace('"met/F"', '"met/I"')
    with pytest.raises(ParseError, match="leaf list 'met/I'"):
        parse_analyzer(bad, "toy.cc")


def test_parser_rejects_duplicate_branch() -> None:
    bad = SNIPPET.replace('"a_eta" , & a_eta', '"a_pt" , & a_eta')
    with pytest.raises(ParseError, match="booked twice"):
        parse_analyzer(bad, "toy.cc")


def _muon_source() -> str:
    path = PACKAGE / "src" / "MuonAnalyzer.cc"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path.read_text()


def test_renamed_branch_is_detected() -> None:
    source = _muon_source().replace('Branch("muon_pt",', 'Branch("muon_ptt",')
    problems = compare(parse_analyzer(source, "MuonAnalyzer.cc"), schema.POET_COLLECTIONS["muon"])
    assert "branch 'muon_pt' (std::vector<float>) is in the schema but not booked" in problems
    assert "branch 'muon_ptt' (std::vector<float>) is booked but not in the schema" in problems


def test_changed_type_is_detected() -> None:
    source = _muon_source().replace("std::vector<int> muon_ch;", "std::vector<float> muon_ch;")
    problems = compare(parse_analyzer(source, "MuonAnalyzer.cc"), schema.POET_COLLECTIONS["muon"])
    assert problems == [
        "branch 'muon_ch': C++ type 'std::vector<float>', schema says 'std::vector<int>'"
    ]


def test_missing_branch_and_missing_clear_are_detected() -> None:
    source = _muon_source()
    source = re.sub(r'\n[^\n]*Branch\("muon_dz",[^\n]*', "", source)
    source = source.replace("muon_eta.clear();", "")
    problems = compare(parse_analyzer(source, "MuonAnalyzer.cc"), schema.POET_COLLECTIONS["muon"])
    assert "branch 'muon_dz' (std::vector<float>) is in the schema but not booked" in problems
    assert "vector 'muon_eta' (branch 'muon_eta') is never clear()ed between events" in problems


def test_cfg_parser_detects_wrong_label() -> None:
    source = CFG.read_text().replace("process.mymuons", "process.muons")
    modules, on_path = parse_cfg(source)
    assert "mymuons" not in modules
    assert modules["muons"].plugin == "MuonAnalyzer"
    assert "muons" in on_path
