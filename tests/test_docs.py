"""README.md and docs/: length, links, and the commands CI runs."""
import glob
import os.path as osp
import re

import pytest

from helpers import REPO

README = osp.join(REPO, 'README.md')
PAGES = [README] + sorted(
    glob.glob(osp.join(REPO, 'docs', '**', '*.md'), recursive=True))
LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)')


def _read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def _prose(text):
    """The text without fenced code blocks and inline code spans."""
    text = re.sub(r'^```.*?^```', '', text, flags=re.M | re.S)
    return re.sub(r'`[^`\n]*`', '', text)


def _anchors(path):
    """GitHub's anchors of the headings of a Markdown file."""
    anchors, seen = set(), {}
    for line in _prose(_read(path)).splitlines():
        match = re.match(r'#{1,6}\s+(.*?)\s*#*\s*$', line)
        if not match:
            continue
        slug = re.sub(r'[^\w\- ]', '', match.group(1).lower())
        slug = slug.replace(' ', '-')
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f'{slug}-{count}')
    return anchors


def _relative_links(path):
    for target in LINK.findall(_prose(_read(path))):
        if not re.match(r'[a-z]+:', target):
            yield target


def test_readme_is_short():
    with open(README, encoding='utf-8') as f:
        assert len(f.readlines()) <= 250


def test_the_documented_pages_exist():
    names = {osp.basename(p) for p in PAGES}
    assert {
        'get_started.md', 'train_test.md', 'inference.md', 'own_data.md',
        'methods.md', 'compose_with_mmseg.md', 'results.md',
        'speed_and_memory.md', 'faults.md', 'development.md'
    } <= names


@pytest.mark.parametrize('page', PAGES, ids=lambda p: osp.relpath(p, REPO))
def test_relative_links_resolve(page):
    broken = []
    for target in _relative_links(page):
        file, _, anchor = target.partition('#')
        dest = osp.normpath(osp.join(osp.dirname(page), file)) \
            if file else page
        if not osp.exists(dest):
            broken.append(f'{target} (no {osp.relpath(dest, REPO)})')
        elif anchor and dest.endswith('.md') and \
                anchor not in _anchors(dest):
            broken.append(f'{target} (no heading #{anchor})')
    assert not broken, f'{osp.relpath(page, REPO)}: {broken}'


def test_link_check_sees_broken_links(tmp_path):
    page = tmp_path / 'page.md'
    page.write_text('# A title\n\n[ok](#a-title) [bad](#nothing) '
                    '[gone](missing.md) `[code](x.md)`\n'
                    '```\n[block](y.md)\n```\n[web](https://x.org/a.md)\n')
    assert list(_relative_links(
        str(page))) == ['#a-title', '#nothing', 'missing.md']
    assert _anchors(str(page)) == {'a-title'}


def test_readme_commands_are_what_ci_runs():
    """CI installs and tests with the README's commands, word for word."""
    readme, ci = _read(README), _read(osp.join(REPO, '.ci', 'run'))
    for command in ('pip install -r requirements.txt -r '
                    'requirements-test.txt -e .', 'python -m pytest tests'):
        assert f'\n{command}\n' in readme
        assert command in ci
