; Inno Setup 6 script for CSOS Desk (Windows x64). How to build: installer\windows\BUILD.md.
;
;   iscc /DAppVersion=0.1.0 installer\windows\csos-desk.iss
;
; Installs the PyInstaller one-folder bundle (build\installers\dist\csos-desk) for the current user (no
; administrator needed, the default) or for all users (the install-mode dialog, or /ALLUSERS). The uninstaller
; removes the program only: the order book, keys and settings in %LOCALAPPDATA%\csos-desk stay unless the person
; uninstalling says "Yes" to removing them (or passes /REMOVEUSERDATA to a silent uninstall). DEA requires orders
; and linked records to be kept for two years (21 CFR 1305.27), so the safe answer is the default.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define AppName "CSOS Desk"
#define AppExe "csos-desk.exe"
#define AppConsoleExe "csos-desk-console.exe"
#define RepoRoot "..\.."
#define BundleDir RepoRoot+"\build\installers\dist\csos-desk"
; Where platformdirs puts the data on Windows: user_data_dir("csos-desk", appauthor=False).
#define UserDataDir "{localappdata}\csos-desk"

[Setup]
; The AppId never changes between versions: upgrades and the uninstaller find earlier installs by it.
AppId={{6F1C2A5E-3B7D-4C8E-9A41-2D5B7E0C9F13}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=CSOS Desk
VersionInfoVersion={#AppVersion}
VersionInfoProductName={#AppName}
VersionInfoDescription={#AppName} installer
; {autopf}: Program Files for all users, %LOCALAPPDATA%\Programs for the current user.
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
; Per-user by default (a pharmacy workstation often has no administrator at hand); the dialog offers all users.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog commandline
UsePreviousPrivileges=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
SetupIconFile=csos-desk.ico
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}
OutputDir={#RepoRoot}\build\installers
OutputBaseFilename=csos-desk-{#AppVersion}-setup
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
CloseApplications=yes
RestartApplications=no
ChangesAssociations=no

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[InstallDelete]
; An upgrade replaces the whole bundle: files a newer version no longer ships must not linger and be loaded.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExe}"; WorkingDir: "{app}"; Comment: "Controlled-substance ordering (DEA CSOS)"
; The self-test runs in a console window that waits for a key ("pause"), so its results can be read before it closes.
Name: "{autoprograms}\{#AppName} self-test"; Filename: "{cmd}"; Parameters: "/c """"{app}\{#AppConsoleExe}"" --self-test & pause"""; WorkingDir: "{app}"; IconFilename: "{app}\{#AppConsoleExe}"; Comment: "Check that CSOS Desk works on this computer"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; WorkingDir: "{app}"; Tasks: desktopicon

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Only what the program itself writes next to its files; never the user data folder (see [Code]).
Type: filesandordirs; Name: "{app}\_internal\__pycache__"

[Code]
function UninstallParamGiven(const Name: String): Boolean;
var
  I: Integer;
begin
  Result := False;
  for I := 1 to ParamCount do
    if CompareText(ParamStr(I), Name) = 0 then
      Result := True;
end;

function ShouldRemoveUserData(): Boolean;
var
  DataDir: String;
begin
  Result := False;
  DataDir := ExpandConstant('{#UserDataDir}');
  if not DirExists(DataDir) then
    Exit;
  if UninstallSilent() then
  begin
    Result := UninstallParamGiven('/REMOVEUSERDATA');
    Exit;
  end;
  Result := MsgBox('Also delete your CSOS Desk data?' + #13#10#13#10 +
    DataDir + #13#10#13#10 +
    'This folder holds your order book, signed orders and linked records, your signing keys and your settings. ' +
    'DEA requires orders and their records to be kept for two years, and a deleted signing key cannot be ' +
    'recovered.' + #13#10#13#10 +
    'Choose No (recommended) to keep them for a later reinstall or an inspection.',
    mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES;
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if CurUninstallStep = usPostUninstall then
  begin
    if ShouldRemoveUserData() then
      DelTree(ExpandConstant('{#UserDataDir}'), True, True, True);
  end;
end;
