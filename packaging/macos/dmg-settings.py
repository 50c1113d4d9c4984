"""dmgbuild settings of LEA desktop: LEA.app (PyInstaller BUNDLE, packaging/lea.spec) in a .dmg.

    dmgbuild -s packaging/macos/dmg-settings.py -D app=dist/LEA.app \
        -D icon=build/pyinstaller/lea/icons/lea.icns "LEA desktop" dist/lea-desktop-<version>-macos-<arch>.dmg

Signing: packaging/lea.spec signs the .app when LEA_MACOS_SIGN_IDENTITY is set (the identity must
be in the keychain); .github/workflows/package.yml then signs the .dmg with the same identity.
Not yet verified on macOS by hand.
"""

import os.path

defines = globals().get("defines", {})  # dmgbuild's -D name=value
application = defines.get("app", "dist/LEA.app")
appname = os.path.basename(application)

format = "UDZO"
filesystem = "HFS+"
files = [application]
symlinks = {"Applications": "/Applications"}
icon = defines.get("icon")  # the volume's icon
badge_icon = None

window_rect = ((200, 120), (600, 340))
default_view = "icon-view"
show_status_bar = False
show_toolbar = False
show_pathbar = False
show_sidebar = False
icon_size = 128
text_size = 13
icon_locations = {appname: (150, 150), "Applications": (450, 150)}
background = "builtin-arrow"
