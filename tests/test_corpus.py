"""Which files of the corpus packages count as music (qbsd_cli/training/corpus.py): the path
rules alone and the unpacking of a generated zip archive; nothing is downloaded. The paths
are the packages' own (Debian 12), as `dpkg-deb -c` and the archives' listings show them."""

from __future__ import annotations

import zipfile

import pytest

from qbsd_cli.training import corpus

ISSUE_20_PACKAGES = (
    "0ad-data",
    "redeclipse-data",
    "flare-game",
    "boswars-data",
    "extremetuxracer-data",
    "openarena-data",
    "pingus-data",
    "freeciv-data",
    "pokerth-data",
    "powermanga-data",
    "funnyboat",
    "solarwolf",
)

MUSIC = [
    # 0 A.D.: its music is inside public.zip, unpacked into public.zip.d/
    ("0ad-data", "usr/share/games/0ad/mods/public/public.zip.d/audio/music/Epitaph.ogg"),
    ("redeclipse-data", "usr/share/games/redeclipse/data/sounds/music/track_01.ogg"),
    ("redeclipse-data", "usr/share/games/redeclipse/data/sounds/theme_chip.it"),  # a module, anywhere
    ("flare-game", "usr/share/games/flare/mods/fantasycore/music/battle_theme.ogg"),
    ("extremetuxracer-data", "usr/share/games/etr/music/calmrace-ks.ogg"),
    ("pingus-data", "usr/share/games/pingus/data/music/pingus-1.it"),
    ("freeciv-data", "usr/share/games/freeciv/stdmusic/CullamBruce-Lockhart--Dawning_Fanfare.ogg"),
    ("powermanga-data", "usr/share/games/powermanga/sound/handheld_console/music_game.ogg"),
    ("funnyboat", "usr/share/games/funnyboat/data/JDruid-Trip_on_the_Funny_Boat.ogg"),
    ("solarwolf", "usr/share/games/solarwolf/data/music/h2.ogg"),
    ("solarwolf", "usr/share/games/solarwolf/data/music/arg.xm"),
    # the earlier packages keep their rules
    ("nexuiz-music", "usr/share/games/nexuiz/data/music.pk3.d/sound/cdtracks/beast-of-insanity.ogg"),
    ("openclonk-data", "usr/share/games/openclonk/Music.ocg/@CrushedIceCocktail.ogg"),
    ("ri-li-data", "usr/share/games/ri-li/Ri-li/Sounds/jeu1.xm"),
    ("supertux-data", "usr/share/games/supertux2/music/antarctic/airship_2.ogg"),
]

NOT_MUSIC = [
    ("0ad-data", "usr/share/games/0ad/mods/public/public.zip.d/audio/ambient/weather/rain_11.ogg"),
    ("0ad-data", "usr/share/games/0ad/mods/public/public.zip.d/audio/voice/greek/civ/civ_female_attack_1.ogg"),
    ("redeclipse-data", "usr/share/games/redeclipse/data/sounds/ambience/wind.ogg"),
    ("redeclipse-data", "usr/share/games/redeclipse/data/sounds/voice/argh.ogg"),
    ("flare-game", "usr/share/games/flare/mods/fantasycore/music/wind_ambient.ogg"),  # wind, in music/
    ("flare-game", "usr/share/games/flare/mods/fantasycore/soundfx/powers/fireball.ogg"),
    ("boswars-data", "usr/share/games/boswars/intro/boswars_intro.ogg"),
    ("boswars-data", "usr/share/games/boswars/sounds/ui/chatmessage.wav"),
    ("extremetuxracer-data", "usr/share/games/etr/sounds/snow_slide.wav"),
    ("openarena-data", "usr/share/games/openarena/baseoa/pak0.pk3.d/sound/world/ambient/x_ancientsdrone.wav"),
    ("openarena-data", "usr/share/games/openarena/missionpack/mp-pak0.pk3.d/sound/voices/rott/affirmative.ogg"),
    ("pingus-data", "usr/share/games/pingus/data/sounds/ohno.wav"),
    ("freeciv-data", "usr/share/games/freeciv/stdsounds/LrgExpl.ogg"),
    ("pokerth-data", "usr/share/games/pokerth/sounds/default/blinds_raises_level1.wav"),
    ("powermanga-data", "usr/share/games/powermanga/sounds/sound_big_explosion_1.wav"),
    ("funnyboat", "usr/share/games/funnyboat/data/blub.ogg"),
    ("solarwolf", "usr/share/games/solarwolf/data/audio/startup.wav"),
    ("supertux-data", "usr/share/games/supertux2/sounds/trampoline.wav"),
]


def test_issue_20_packages_are_fetched_and_their_rules_name_only_them():
    assert set(ISSUE_20_PACKAGES) <= set(corpus.DATA_PACKAGES)
    assert len(set(corpus.PACKAGES)) == len(corpus.PACKAGES)
    assert set(corpus.MUSIC_PATTERNS) | set(corpus.NOT_MUSIC_PATTERNS) <= set(corpus.PACKAGES)


@pytest.mark.parametrize(("package", "path"), MUSIC)
def test_music_paths(package, path):
    assert corpus._is_music_path(package, path)


@pytest.mark.parametrize(("package", "path"), NOT_MUSIC)
def test_effects_voices_and_ambience_are_not_music(package, path):
    assert not corpus._is_music_path(package, path)


def test_only_the_music_members_of_an_archive_are_unpacked(tmp_path):
    folder = tmp_path / "usr/share/games/0ad/mods/public"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "public.zip", "w") as archive:
        for member in (
            "audio/music/Epitaph.ogg",
            "audio/music/album.png",
            "audio/voice/greek/civ/civ_female_attack_1.ogg",
            "audio/ambient/weather/rain_11.ogg",
            "art/textures/stone.png",
        ):
            archive.writestr(member, b"not really audio")
    (tmp_path / "plain.zip").write_bytes(b"not a zip")  # left alone, not an error
    corpus._unpack_archives(str(tmp_path), "0ad-data", log=lambda message: None)
    unpacked = folder / "public.zip.d"
    assert sorted(p.relative_to(unpacked).as_posix() for p in unpacked.rglob("*") if p.is_file()) == [
        "audio/music/Epitaph.ogg"
    ]
    assert not (tmp_path / "plain.zip.d").exists()
