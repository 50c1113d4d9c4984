; Inno Setup script of LEA desktop: installs the PyInstaller one-folder bundle (dist\lea\),
; with a Start-menu entry and an uninstaller. Built by .github/workflows/package.yml:
;
;   pyinstaller --noconfirm --distpath dist --workpath build\pyinstaller packaging\lea.spec
;   iscc /DAppVersion=0.1.0 packaging\windows\lea.iss
;     -> dist\lea-desktop-0.1.0-windows-x64-setup.exe
;
; Silent install (what the CI smoke test does): setup.exe /VERYSILENT /CURRENTUSER /DIR=<dir>
; Not yet verified on Windows by hand.

#ifndef AppVersion
  #error Pass the version: iscc /DAppVersion=<version> packaging\windows\lea.iss
#endif
; Paths are relative to this script's folder.
#ifndef BundleDir
  #define BundleDir "..\..\dist\lea"
#endif
#ifndef IconFile
  #define IconFile "..\..\build\pyinstaller\lea\icons\lea.ico"
#endif

[Setup]
AppId={{4F1C7B2E-8D3A-4E4B-9C55-2A7E6F0D1B39}
AppName=LEA desktop
AppVersion={#AppVersion}
AppVerName=LEA desktop {#AppVersion}
AppPublisher=LEA desktop
DefaultDirName={autopf}\LEA desktop
DefaultGroupName=LEA desktop
DisableProgramGroupPage=yes
; per-user or all-users: the user chooses (or /CURRENTUSER, /ALLUSERS)
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=commandline dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=lea-desktop-{#AppVersion}-windows-x64-setup
SetupIconFile={#IconFile}
UninstallDisplayIcon={app}\lea.exe
UninstallDisplayName=LEA desktop
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\LEA desktop"; Filename: "{app}\lea.exe"
Name: "{group}\{cm:UninstallProgram,LEA desktop}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\LEA desktop"; Filename: "{app}\lea.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\lea.exe"; Description: "{cm:LaunchProgram,LEA desktop}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; the bundle only; the user's data (%LOCALAPPDATA%\lea-desktop) stays
Type: filesandordirs; Name: "{app}\_internal"
