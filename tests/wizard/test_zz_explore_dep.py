import json, pytest
from io import StringIO
from django.core.management import call_command

@pytest.mark.django_db
def test_explore(tmp_path):
    doc = json.load(open("docs/examples/lync-2013-guide.json"))
    doc.update(version="2010", web_persistence="cookie", certificate="Missing-cert")
    p = tmp_path / "a.json"; p.write_text(json.dumps(doc))
    out = StringIO()
    call_command("lync_wizard", "--answers", str(p), "--dry-run", stdout=out)
    print(out.getvalue())
